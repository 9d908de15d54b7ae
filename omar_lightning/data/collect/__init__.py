"""Dataset making: behaviour policies, reference returns and the dataset tiers (``omar collect``).

============================  ====================================================================
module                        concern
============================  ====================================================================
``matd3``                     MATD3 behaviour training: settings, networks, the TD3 update (on
                              :mod:`omar_lightning.losses`), lockstep rounds of environment copies
                              (:class:`omar_lightning.envs.rollout.EnvCopies`), the resumable state
``replay``                    the replay buffer and its row layout (episodes back in order)
``snapshots``                 the policy snapshot format, a run's ``snapshots.json`` and its levels,
                              the shipped snapshots of ``omar_lightning/policies/``
``behaviour``                 a training run in a folder, started or resumed (``omar collect train``)
``references``                S_random and S_expert of the normalized score
``tiers``                     random, medium-replay, medium and expert tiers and their files
                              (``omar collect dataset``, the data module's first-use writers)
============================  ====================================================================

Every file is written atomically (:func:`omar_lightning.atomic.atomic_write`). The tier names are
:data:`omar_lightning.data.format.TIERS`.
"""
