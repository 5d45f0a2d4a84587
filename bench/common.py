"""What both sides of the benchmark share: one model, one tokenizer, one data set, one clock.

The model is a randomly initialised Llama of ~5.3M parameters (the architecture of the
harness's real policies, sized like the GPT-2-style model of the issue's TRL figures) with a
4,096-token byte-level BPE trained on the TL;DR generator's posts. Its directory is built
once under the cache by the harness's own `TinyRandom` source; TRL reads the same directory.

Data: prompts and responses are spans of generated posts, 32–64 tokens each, drawn with a
fixed seed. Every record carries text (for TRL, which tokenises itself) and the token ids the
harness uses; `check_roundtrip` guarantees that re-tokenising the text gives those ids, so
both sides see the same tokens.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MODEL = dict(vocab_size=4096, hidden_size=256, intermediate_size=768, num_layers=5, num_heads=4,
             num_kv_heads=4, max_positions=512, seed=0)
PROMPT_TOKENS = (32, 64)
RESPONSE_TOKENS = (32, 64)
# One step's work, the same on both sides.
BATCH = 16  # pairs (reward model, DPO), examples (KTO), episodes (PPO, RLOO, GRPO) per optimiser step
NEW_TOKENS = 48  # rollout length (fixed: min_new_tokens = max_new_tokens)
TEMPERATURE = 0.7
BETA = 0.1
LR = 1e-5


# The harness's own default (harness/conf/config.yaml, paths.cache_dir), so both share one cache.
DEFAULT_CACHE = "~/.cache/prefharness"


def cache_dir(path: str | Path | None = None) -> Path:
    """Where the benchmark model is built: `path`, else $PREFHARNESS_CACHE (as for `harness`), else
    the harness's default. Read at each call, not at import: the tests point $PREFHARNESS_CACHE at
    a temporary directory, and nothing may fall back to a user's cache before they do."""
    return Path(path or os.environ.get("PREFHARNESS_CACHE") or DEFAULT_CACHE).expanduser()


def corpus_texts(n: int = 3000, seed: int = 0) -> list[str]:
    from harness.tasks.tldr import generate_posts

    return [d.source for d in generate_posts(n, seed)]


def model_dir(cache: str | Path | None = None) -> Path:
    """The benchmark model's HF directory (built on first use under `cache_dir(cache)`, then reused)."""
    from harness.models.sources import TinyRandom

    return TinyRandom(**MODEL).materialize(cache_dir(cache), lambda: corpus_texts())


@dataclass(frozen=True)
class Record:
    prompt: str
    chosen: str
    rejected: str
    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]  # without EOS; both sides append it
    rejected_ids: tuple[int, ...]
    desirable: bool  # KTO's label for `chosen` when the record is used unpaired


def _span(ids: list[int], rng: random.Random, lo: int, hi: int, tokenizer) -> tuple[str, tuple[int, ...]]:
    """A span of lo..hi tokens whose decoded text re-tokenises to exactly those tokens."""
    for _ in range(50):
        n = rng.randint(lo, hi)
        start = rng.randrange(0, max(1, len(ids) - n))
        span = ids[start : start + n]
        text = tokenizer.decode(span)
        again = tokenizer(text, add_special_tokens=False)["input_ids"]
        if again == span and text.strip() == text and len(span) == n:
            return text, tuple(span)
    raise RuntimeError("no span round-trips through the tokenizer")


def records(tokenizer, n: int = 512, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    docs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in corpus_texts(n=max(n, 600), seed=seed + 1)]
    docs = [d for d in docs if len(d) >= 2 * RESPONSE_TOKENS[1]]
    out = []
    for i in range(n):
        p, pi = _span(docs[i % len(docs)], rng, *PROMPT_TOKENS, tokenizer)
        c, ci = _span(docs[(i + 1) % len(docs)], rng, *RESPONSE_TOKENS, tokenizer)
        r, ri = _span(docs[(i + 2) % len(docs)], rng, *RESPONSE_TOKENS, tokenizer)
        out.append(Record(p, " " + c, " " + r, pi, tuple(tokenizer(" " + c, add_special_tokens=False)["input_ids"]),
                          tuple(tokenizer(" " + r, add_special_tokens=False)["input_ids"]), i % 2 == 0))
    return out


def mean_tokens(recs: list[Record], which: str) -> float:
    """Real (non-pad) tokens per item that a side runs, EOS included: the FLOP count's `tokens`.
    `pair`: prompt, chosen, prompt, rejected (TRL); `pair_shared_prompt`: the prompt once for
    both responses (the harness, collate.SharedPrompts); `example`: prompt and response."""
    p = sum(len(r.prompt_ids) for r in recs) / len(recs)
    c = sum(len(r.chosen_ids) + 1 for r in recs) / len(recs)
    rj = sum(len(r.rejected_ids) + 1 for r in recs) / len(recs)
    return {"pair": 2 * p + c + rj, "pair_shared_prompt": p + c + rj, "example": p + c}[which]


def ratio_cell(ratios: list[float]) -> str:
    """A table cell: the median of per-round ratios in bold, then their min–max."""
    import statistics

    return f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f})"


def publish(lines: list[str], write: str | None, section: str) -> None:
    """Print a section's lines, and write them into `write`'s `section` when given."""
    text = "\n".join(lines)
    print(text)
    if write:
        write_section(write, section, text)


def write_section(path: str | Path, name: str, text: str) -> None:
    """Replace the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in `path`
    (appending the section if it is not there), leaving the rest of the file as written."""
    path = Path(path)
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    tmp.replace(path)


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class StepClock:
    """Wall time of steps after `warmup`: call `tick()` at the end of every step."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.steps = 0
        self.t0: float | None = None
        self.t1: float | None = None

    def tick(self) -> None:
        self.steps += 1
        now = time.perf_counter()
        if self.steps == self.warmup:
            self.t0 = now
        self.t1 = now

    @property
    def timed_steps(self) -> int:
        return self.steps - self.warmup

    @property
    def seconds(self) -> float:
        if self.t0 is None or self.t1 is None or self.timed_steps <= 0:
            raise RuntimeError(f"only {self.steps} steps ran; {self.warmup} are warm-up")
        return self.t1 - self.t0


@dataclass
class Result:
    side: str  # harness | trl | hf
    objective: str
    items: float  # items in the timed steps (pairs, examples, episodes, new tokens)
    seconds: float
    tokens_per_item: float  # real tokens per item for the FLOP count
    peak_mb: float  # peak RSS above the RSS before the model was built
    extra: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)


def freeze_bottom(model, n: int) -> None:  # noqa: ANN001 - a causal LM, a bare trunk or a classifier
    """The bench's frozen-bottom rows: embeddings (tied to the output layer) and the bottom `n`
    decoder blocks get requires_grad=False, on either side (the harness's own runs do the same
    through `model.trainable_layers`, harness.models.loading.freeze_lower_layers)."""
    if n <= 0:
        return
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    decoder = getattr(decoder, "model", decoder) if not hasattr(decoder, "layers") else decoder
    decoder.get_input_embeddings().requires_grad_(False)
    for block in decoder.layers[:n]:
        block.requires_grad_(False)

