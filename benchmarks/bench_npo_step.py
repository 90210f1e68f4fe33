"""Step time and peak memory of NPO with a cached reference, against gradient ascent and NPO with a live reference.

    python benchmarks/bench_npo_step.py                  # a random Llama built here (CPU-friendly size)
    python benchmarks/bench_npo_step.py --model CKPT     # any local causal-LM checkpoint (safetensors)

Each variant runs `UnlearnTrainer` in a fresh subprocess on the same forget/retain batches (same seed), so its
peak memory is its own: on CUDA, `torch.cuda.max_memory_allocated` (tensors only); on CPU, the process's peak
resident set size (`resource.getrusage(...).ru_maxrss`, which includes the Python interpreter and the libraries).
Step time is the median time of the optimizer steps after the warm-up ones (forward + backward + update), measured
with a TrainerCallback: on CUDA wall time (synchronised), on CPU the process's CPU time (all threads), which other
processes on a shared machine do not inflate (wall time is printed beside it). The setup (caching the reference
log-probabilities) is reported separately. Variants run in interleaved rounds and the fastest round of each is
kept.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

VARIANTS = {
    "ga": ("ga", {}),
    "npo-cached": ("npo", {"reference": "cached"}),
    "npo-live": ("npo", {"reference": "live"}),
}
WORDS = ["alpha", "beta", "gamma", "delta", "river", "mountain", "city", "painter", "doctor", "born", "works", "lives", "plays", "music", "science", "history", "north", "south", "east", "west", "old", "new", "red", "blue", "green", "small", "large", "early", "late"]


def synthetic_documents(count: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "." for _ in range(count)]


def build_random_model(out: Path, hidden: int, layers: int, vocab: int) -> Path:
    """A randomly initialised Llama with a byte-level BPE tokenizer trained on the synthetic vocabulary."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(synthetic_documents(400, 40, seed=1), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|pad|>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=1024, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


def measure(variant: str, options: argparse.Namespace) -> dict:
    """Run one variant in this process and return its timings and memory."""
    import torch
    from transformers import PrinterCallback, TrainerCallback, TrainingArguments

    from unlearners import create_method
    from unlearners.data import ForgetRetainDataset, PairCollator, tokenize_documents
    from unlearners.reference import Reference, frozen_copy
    from unlearners.runner import load_model_and_tokenizer
    from unlearners.trainer import UnlearnTrainer

    name, overrides = VARIANTS[variant]
    method = create_method(name, overrides={**overrides, "max_length": options.seq_len})
    model, tokenizer, _ = load_model_and_tokenizer(options.model)
    forget = tokenize_documents(tokenizer, synthetic_documents(options.docs, options.words, seed=2), options.seq_len)
    mode = method.reference_mode(lora=False)
    reference = Reference(mode, frozen_copy(model) if mode == "live" else None) if mode else None

    cuda = torch.cuda.is_available()
    clock = time.perf_counter if cuda else time.process_time

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.wall: list[float] = []
            self.started = (0.0, 0.0)

        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.started = (clock(), time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.times.append(clock() - self.started[0])
            self.wall.append(time.perf_counter() - self.started[1])

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as work:
        args = TrainingArguments(
            output_dir=work, max_steps=options.warmup + options.steps, per_device_train_batch_size=options.batch_size,
            per_device_eval_batch_size=options.batch_size, learning_rate=1e-5, save_strategy="no",
            report_to="none", logging_steps=10_000, disable_tqdm=True, remove_unused_columns=False, seed=0,
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = UnlearnTrainer(
            model=model, args=args, train_dataset=ForgetRetainDataset(forget, None, seed=0),
            data_collator=PairCollator(tokenizer.pad_token_id), method=method, reference=reference,
            forget_examples=forget, pad_token_id=tokenizer.pad_token_id, callbacks=[timer],
        )
        trainer.remove_callback(PrinterCallback)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = clock()
        method.setup(trainer.ctx)  # timed on its own; train() skips it afterwards
        trainer._setup_done = True
        setup_s = clock() - started
        trainer.train()
    steps = timer.times[options.warmup:]
    if torch.cuda.is_available():
        peak, peak_kind = torch.cuda.max_memory_allocated(), "cuda max_memory_allocated"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"
    return {
        "variant": variant, "step_s_median": statistics.median(steps), "step_s_mean": statistics.mean(steps),
        "wall_s_median": statistics.median(timer.wall[options.warmup:]),
        "clock": "wall time (CUDA synchronised)" if cuda else "process CPU time",
        "setup_s": setup_s, "peak_bytes": peak, "peak_kind": peak_kind,
        "params": sum(p.numel() for p in model.parameters()), "forget_examples": len(forget),
        "reference_bytes": sum(p.numel() * p.element_size() for p in reference.model.parameters())
        if reference is not None and reference.model is not None else 0,
        "device": str(trainer.args.device), "threads": torch.get_num_threads(),
    }


def run_child(variant: str, options: argparse.Namespace) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    command = [sys.executable, __file__, "--child", variant, "--result", result_path, "--model", str(options.model)]
    for key in ("steps", "warmup", "batch_size", "seq_len", "docs", "words"):
        command += [f"--{key.replace('_', '-')}", str(getattr(options, key))]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
    subprocess.run(command, check=True, env=env, cwd=REPO_ROOT)
    try:
        return json.loads(Path(result_path).read_text())
    finally:
        os.unlink(result_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: a random Llama built in a temporary folder)")
    parser.add_argument("--hidden", type=int, default=384, help="random model: hidden size (default 384)")
    parser.add_argument("--layers", type=int, default=6, help="random model: layers (default 6)")
    parser.add_argument("--vocab", type=int, default=2000, help="random model: vocabulary size (default 2000)")
    parser.add_argument("--steps", type=int, default=15, help="timed optimizer steps per round (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per variant (default 2)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per example (documents are cut to it)")
    parser.add_argument("--docs", type=int, default=64, help="forget documents")
    parser.add_argument("--words", type=int, default=120, help="words per synthetic document")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.child:
        Path(options.result).write_text(json.dumps(measure(options.child, options)))
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        if not options.model:
            options.model = build_random_model(Path(scratch) / "model", options.hidden, options.layers, options.vocab)
        best: dict[str, dict] = {}
        for _ in range(options.rounds):
            for variant in VARIANTS:
                result = run_child(variant, options)
                if variant not in best or result["step_s_median"] < best[variant]["step_s_median"]:
                    best[variant] = result

    ga = best["ga"]["step_s_median"]
    first = best["ga"]
    print(f"model: {options.model if isinstance(options.model, str) else 'random Llama'} "
          f"({first['params'] / 1e6:.2f}M parameters), device {first['device']}, {first['threads']} threads, "
          f"batch {options.batch_size} x {options.seq_len} tokens, {options.steps} timed steps, "
          f"best of {options.rounds} rounds")
    print(f"step time: {first['clock']}; memory: {first['peak_kind']}")
    print()
    print(f"{'variant':<12} {'step median':>12} {'step mean':>10} {'vs GA':>7} {'(wall)':>9} {'setup':>8} "
          f"{'peak memory':>12} {'ref. weights':>13}")
    for variant, result in best.items():
        print(f"{variant:<12} {result['step_s_median'] * 1e3:>10.1f}ms {result['step_s_mean'] * 1e3:>8.1f}ms "
              f"{result['step_s_median'] / ga:>6.2f}x {result['wall_s_median'] * 1e3:>7.0f}ms {result['setup_s']:>7.2f}s "
              f"{result['peak_bytes'] / 2**20:>8.0f} MiB {result['reference_bytes'] / 2**20:>9.1f} MiB")
    ratio = best["npo-cached"]["step_s_median"] / ga
    print()
    print(f"NPO-cached / GA step time: {ratio:.3f} (target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
