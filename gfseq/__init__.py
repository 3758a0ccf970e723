"""gfseq: Gated-Feedback RNNs (Chung et al., ICML 2015) trained on progeval programs and enwik8.

The layers, models and training engine arrive with the issues that build them; this package holds the
version for now.
"""

__version__ = "0.1.0"
