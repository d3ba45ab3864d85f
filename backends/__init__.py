"""Framework backends of multistyle, installed as ``multistyle.backends``.

One module per framework; each is imported only when its backend is asked
for, so importing :mod:`multistyle` loads no framework.
"""
