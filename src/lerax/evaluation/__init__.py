"""Evaluating a policy: the returns and lengths of whole episodes.

[`evaluate_policy`][lerax.evaluation.evaluate_policy] runs a batch of episodes
in one compiled loop and returns an
[`EvaluationResult`][lerax.evaluation.EvaluationResult].
"""

from ._evaluate import EvaluationResult as EvaluationResult
from ._evaluate import evaluate_policy as evaluate_policy
