"""Video: a clip stylised frame-coherently (Ruder, Dosovitskiy & Brox, 2016).

:mod:`.flow` holds what every backend shares, in NumPy with OpenCV (the ``video`` extra): optical flow between
frames, the forward-backward consistency check that says where the flow can be trusted, and warping by it.
:mod:`.frames` reads and writes clips (imageio-ffmpeg); :mod:`.temporal` is the temporal loss over the backend
protocol; :mod:`.fast` runs a trained network over a clip, blending each output along the flow.
"""
