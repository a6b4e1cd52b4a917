"""Probes: small models trained on frozen embeddings, many at once, with their per-example outputs.

Used by the scaling grid (held-out error of probes on pruned subsets) and by
the training-dynamics metrics (EL2N, forgetting, AUM, ...: the outputs of the
probes on their own training examples, read during training).

- :func:`probe_features`: the probes' input features (L2-normalised, whitened, plus a bias column).
- :class:`LinearProbes`: multinomial logistic regression on prefixes of row orderings, a batched
  full-batch L-BFGS; ``fit(on_iteration=...)`` shows the weights after every iteration.
- :class:`MLPProbes`: one-hidden-layer MLPs, batched Adam on per-probe mini-batches; ``on_step=``.
- :class:`EpochLinearProbes`: one linear probe per seed, mini-batch SGD for whole epochs over all rows;
  ``on_batch=`` sees every mini-batch's logits before the step, ``on_epoch=`` / ``record_epochs=`` the
  weights or the logits of all training examples at chosen epochs (the training-dynamics metrics).
- :mod:`backend.probes.outputs`: logits -> soft-max, correct-class margin, EL2N.
- :func:`gemm_dtype` / :func:`cpu_threads`: the matrix-product precision and the torch thread count.

Vocabulary: N examples, D features (with the bias column), C classes, P probes.
torch is imported inside the functions that need it.
"""

from .features import probe_features
from .linear import LINEAR_DEFAULTS, LinearProbes, PrefixBlocks
from .minibatch import SGD_DEFAULTS, EpochLinearProbes
from .mlp import MLP_DEFAULTS, MLPProbes
from .outputs import correct_class_margin, el2n_from_logits, softmax
from .runtime import cpu_threads, gemm_dtype

__all__ = [
    "LINEAR_DEFAULTS",
    "MLP_DEFAULTS",
    "SGD_DEFAULTS",
    "EpochLinearProbes",
    "LinearProbes",
    "MLPProbes",
    "PrefixBlocks",
    "correct_class_margin",
    "cpu_threads",
    "el2n_from_logits",
    "gemm_dtype",
    "probe_features",
    "softmax",
]
