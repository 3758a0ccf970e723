"""gfseq: Gated-Feedback RNNs (Chung et al., ICML 2015) trained on progeval programs and enwik8.

gfseq.nn holds the layers (GFRNN, GFGRU, GFLSTM); gfseq.run the main job (encoder-decoders on
progeval programs); gfseq.engine the training loop; gfseq.evaluate re-scores a run.
"""

__version__ = "0.1.0"
