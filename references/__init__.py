"""The sources' own code, written the way each source writes it: the yardsticks multistyle is held to.

* :mod:`~multistyle.references.d2l_chapter` -- the "Neural Style Transfer" chapter's training loop of Dive
  into Deep Learning, once per framework (PyTorch, MXNet, Paddle);
* :mod:`~multistyle.references.recipes` -- the PyTorch tutorial's L-BFGS loop and the Viblo article's RMSprop
  loop (the ``pytorch-tutorial`` and ``viblo`` presets);
* :mod:`~multistyle.references.floor` -- each framework's bare forward and backward pass through the same
  VGG-19 layers: what one iteration cannot undercut.

They are not what ``multistyle run`` runs: the tests check that multistyle computes what they compute, and
the benchmarks time multistyle against them.  Installed as ``multistyle.references`` (from the
repository's ``references/`` folder), so both import them without touching ``sys.path``.  Each imports its
framework only when called, like the backends.
"""
