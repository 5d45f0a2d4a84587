"""Whether reading the log-probs off `generate` costs sampling time: `generate_with_logps`
against `generate_responses` on SmolLM2-135M, the same prompts and seed, rounds alternating.

    python -m bench.sampler_logps        # 48 sentiment prompts × 2 responses, 24 tokens, 3 rounds
"""

from __future__ import annotations

import time

from hydra.utils import instantiate
from omegaconf import OmegaConf

from bench.common import cache_dir
from harness.cli.run import CONFIG_DIR
from harness.models.loading import load_causal_lm
from harness.models.sampling import generate_responses, generate_with_logps
from harness.tasks.sentiment import SentimentTask


def main(rounds: int = 3, n: int = 48) -> None:
    path = instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/smollm2_135m.yaml").source).materialize(cache_dir())
    model, tok = load_causal_lm(path)
    prompts = [tok(e.prompt, add_special_tokens=False).input_ids for e in SentimentTask().examples("train")[:n]]
    seconds: dict[str, list[float]] = {"plain": [], "logps": []}
    for rnd in range(rounds):
        for name in (("plain", "logps") if rnd % 2 == 0 else ("logps", "plain")):
            sample = generate_responses if name == "plain" else generate_with_logps
            start = time.perf_counter()
            sample(model, tok, prompts, max_new_tokens=24, temperature=0.7, k=2, batch_size=32, seed=rnd)
            seconds[name].append(time.perf_counter() - start)
    print("seconds:", {k: [round(x, 1) for x in v] for k, v in seconds.items()})
    print("with log-probs ÷ without, per round:", [round(a / b, 3) for a, b in zip(seconds["logps"], seconds["plain"])])


if __name__ == "__main__":
    main()
