"""Image editing with the course's StyleGAN (lesson 10): inversion, edit directions, restoration.

- ``inversion``: the codes in Z, W or W+ whose images are nearest to a target (StyleGAN2's projector);
- ``directions``: edit directions from labels (InterFaceGAN), PCA of W (GANSpace) or the weights (SeFa);
- ``attributes``: stroke thickness and slant measured from the pixels, the class from the classifier;
- ``restoration``: inpainting and super-resolution by inversion, and their classical baselines.

Import what you need from these modules; importing the package has no side effects.
"""
