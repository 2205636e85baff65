"""The diffusion teacher: its settings (``settings``), the fusion objective and EM solver (``objective``),
the DDFM-style sampler (``ddfm``), the luminance diffusion prior (``prior``), ensemble sampling
(``ensemble``), the ensemble cache (``cache``) and the frozen backbones of the distillation (``backbone``)."""
