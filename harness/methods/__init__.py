"""Policy-optimisation methods: what the train stage does, chosen by `loss.method._target_`.

Each module is one family; its `Method` chooses the artifact stages it needs (harness/stages.py)
and the LightningModule that trains, and returns the policy to evaluate (`EvalPolicy`):
- `offline.OfflinePreference`: DPO and relatives, KTO, on the labels with cached reference log-probs;
- `ppo.PPO`: a reward model trained on the labels, then PPO against it with a KL penalty;
- `best_of_n.BestOfN`: the same reward model picks the best of n samples of the initial policy;
- `reward_model.RewardModelOnly`: the reward-model stage alone (its artifact serves later PPO and
  best-of-n runs); the policy evaluated is the initial one;
- `sft.SFT`: supervised fine-tuning on references or on chosen responses.
"""
