"""The version of the training update, recorded in every run summary.

``UPDATE_VERSION`` is raised by every change that alters what a run computes from the same
config, seed and dataset. ``omar reproduce`` treats a summary of another version as stale and
runs its cell again (never resuming the old run's checkpoints), and ``omar report`` never
averages runs of different versions (``omar_lightning/reproduce/report/common.py``). Summaries without
the field are version 1.

History:

1. Until the official update was matched: one input BatchNorm per twin critic, HalfCheetah's
   CQL(H) mixture scored in one pooled critic call without clamping the policy samples, CEM's
   sigma the biased std of the elites, minibatches drawn with replacement, the norms' biases
   of padded input features trained (agents of different sizes, centralized critics), no
   evaluation before the first update.
2. The official update: twin critics share one input BatchNorm per agent, the CQL(H) mixture is
   scored in one critic call per kind of sample with the policy samples clamped to [-1, 1], CEM
   refits sigma with the elites' unbiased std, each agent's minibatch holds distinct
   transitions, padded input features take no part in training, and the policies are evaluated
   before the first update (update 0 of the learning curve, not part of the score).
"""

UPDATE_VERSION = 2
