"""Every method's loss against an independent hand computation, on a tiny random Llama.

The hand computations below are written from the formulas in the methods' docstrings (and, for the RESTOR
variants, from the official code k1rezaei/restor@15292e58 unlearning/unlearn/{GA,KL,NPO}.py and its README):
explicit loops over sequences and tokens in float64, each sequence run alone (no padding), without
`unlearners.losses`. The method sees a padded 2-example forget batch (lengths 7 and 4, rows in reverse index order)
and a padded 2-example retain batch (lengths 5 and 9), so the reductions (per token, per sequence, per batch,
over padding) matter. Each check also asserts that flipping the sign of the forget or of the retain term would not
pass, so the terms' signs are pinned down.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import pytest
import torch

VOCAB = 23
PAD = 0
FORGET = [[5, 9, 3, 17, 8, 2, 11], [4, 14, 6, 2]]  # forget examples 0 and 1
RETAIN = [[7, 1, 19, 12, 3], [13, 22, 10, 15, 16, 20, 18, 21, 9]]
FORGET_ROWS = [1, 0]  # the forget batch holds example 1, then example 0
TOL = dict(rel_tol=1e-5, abs_tol=1e-5)


# -- fixtures ---------------------------------------------------------------------------------------------------
def _tiny_llama(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=32, initializer_range=0.3, pad_token_id=PAD,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model():
    return _tiny_llama(0)


@pytest.fixture(scope="module")
def reference_model():
    """The model before unlearning: a different random Llama, so that log-ratios and KLs are not zero."""
    return _tiny_llama(1)


def _batch(seqs, indices):
    """Right-padded batch in the unlearners format (labels -100 on padding)."""
    longest = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), longest), PAD, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention_mask[row, : len(seq)] = 1
    labels = input_ids.masked_fill(attention_mask.eq(0), -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "index": torch.tensor(indices, dtype=torch.long)}


def _forget_batch():
    return _batch([FORGET[i] for i in FORGET_ROWS], FORGET_ROWS)


def _retain_batch():
    return _batch(RETAIN, [0, 1])


def _ctx(model, reference_model, reference_mode):
    """Context as the trainer builds it: `ctx.model` is the model before unlearning (what a cache is taken from),
    the forget set is walked one example at a time (other padding than the training batch)."""
    from unlearners.base import MethodContext
    from unlearners.reference import Reference

    reference = Reference("live", reference_model) if reference_mode == "live" else None
    return MethodContext(
        model=reference_model if reference_mode == "cached" else model,
        reference=reference,
        reference_mode=reference_mode,
        lora=False,
        device=torch.device("cpu"),
        seed=0,
        forget_batches=lambda: iter([_batch([seq], [i]) for i, seq in enumerate(FORGET)]),
    )


def _loss(name, model, reference_model, reference_mode=None, **hparams):
    from unlearners.runner import make_method

    method = make_method(name, hparams)
    mode = reference_mode or method.reference_mode(lora=False)
    ctx = _ctx(model, reference_model, mode)
    method.select_trainable(model, lora=False)
    method.setup(ctx)
    try:
        with torch.no_grad():
            loss, logs = method.loss(model, _forget_batch(), _retain_batch(), ctx)
    finally:
        model.requires_grad_(True)
    assert loss.dim() == 0 and torch.isfinite(loss)
    return float(loss), logs, method


# -- hand computations (float64, one sequence at a time) -----------------------------------------------------------
@torch.no_grad()
def _logits(model, seq):
    return model(torch.tensor([seq])).logits[0].double()


@torch.no_grad()
def _hidden(model, seq, layer):
    return model(torch.tensor([seq]), output_hidden_states=True).hidden_states[layer + 1][0].double()


def _log_softmax_row(row):
    top = max(row.tolist())
    lse = top + math.log(sum(math.exp(v - top) for v in row.tolist()))
    return [v - lse for v in row.tolist()]


def _token_logprobs(model, seq):
    """[log p(x_t | x_<t) for t = 1 .. len-1]."""
    logits = _logits(model, seq)
    return [_log_softmax_row(logits[t - 1])[seq[t]] for t in range(1, len(seq))]


def _mean_nll(model, seqs):
    """Mean next-token NLL over all predicted tokens of the sequences (Hugging Face `outputs.loss`)."""
    values = [lp for seq in seqs for lp in _token_logprobs(model, seq)]
    return -sum(values) / len(values)


def _log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _kl_ref_to_model(model, reference_model, seqs):
    """KL(p_ref || p_theta) averaged over the predicted tokens of the sequences."""
    total, count = 0.0, 0
    for seq in seqs:
        logits, ref_logits = _logits(model, seq), _logits(reference_model, seq)
        for t in range(1, len(seq)):
            logp, ref_logp = _log_softmax_row(logits[t - 1]), _log_softmax_row(ref_logits[t - 1])
            total += sum(math.exp(r) * (r - m) for r, m in zip(ref_logp, logp))
            count += 1
    return total / count


@torch.no_grad()
def _cross_entropy_all_positions(model, reference_model, batch):
    """RESTOR's kl_loss(softmax(model logits), softmax(reference logits)) on the padded batch: mean over all
    [B, S] positions (padding and the last one included) of -sum_v p(v) log(q(v) + 1e-12)."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    logits = model(**inputs).logits.double()
    ref_logits = reference_model(**inputs).logits.double()
    total, count = 0.0, 0
    for b in range(logits.size(0)):
        for t in range(logits.size(1)):
            p = [math.exp(v) for v in _log_softmax_row(logits[b, t])]
            q = [math.exp(v) for v in _log_softmax_row(ref_logits[b, t])]
            total += -sum(pv * math.log(qv + 1e-12) for pv, qv in zip(p, q))
            count += 1
    return total / count


def _forget_seqs():
    return [FORGET[i] for i in FORGET_ROWS]


def _npo_sequence(model, reference_model, beta):
    values = []
    for seq in _forget_seqs():
        log_ratio = sum(_token_logprobs(model, seq)) - sum(_token_logprobs(reference_model, seq))
        values.append(-(2 / beta) * _log_sigmoid(-beta * log_ratio))
    return sum(values) / len(values)


def _npo_batch_mean_token(model, reference_model, beta):
    neg_log_ratio = _mean_nll(model, _forget_seqs()) - _mean_nll(reference_model, _forget_seqs())
    return -(2 / beta) * _log_sigmoid(beta * neg_log_ratio)


def _npo_token(model, reference_model, beta):
    """RESTOR README: (2 / (beta T)) sum_i log(1 + (P_theta(x_i|x_<i) / P_c(x_i|x_<i))^beta), mean over examples."""
    values = []
    for seq in _forget_seqs():
        lp, ref_lp = _token_logprobs(model, seq), _token_logprobs(reference_model, seq)
        terms = [math.log1p(math.exp(beta * (a - b))) for a, b in zip(lp, ref_lp)]
        values.append(2 / (beta * len(terms)) * sum(terms))
    return sum(values) / len(values)


def _check(loss, forget_part, retain_part=0.0):
    """loss == forget_part + retain_part, and neither term's sign flipped would give it."""
    assert math.isclose(loss, forget_part + retain_part, **TOL), (loss, forget_part, retain_part)
    assert abs(forget_part) > 1e-2
    assert not math.isclose(loss, -forget_part + retain_part, rel_tol=1e-3, abs_tol=1e-3)
    if retain_part:
        assert abs(retain_part) > 1e-2 and abs(abs(forget_part) - abs(retain_part)) > 1e-2
        assert not math.isclose(loss, forget_part - retain_part, rel_tol=1e-3, abs_tol=1e-3)


# -- the registry is covered --------------------------------------------------------------------------------------
def _methods_checked_here() -> set[str]:
    """The method names this module's tests hand to `_loss(...)`."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_loss"
        and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    }


def test_every_registered_builtin_has_a_hand_computed_loss_test():
    from unlearners.registry import builtin_methods

    missing = sorted(set(builtin_methods()) - _methods_checked_here())
    assert not missing, f"no hand-computed loss test (a `_loss(name, ...)` call) in this file for {missing}"
    assert _methods_checked_here() <= set(builtin_methods())


# -- GA, GradDiff, task vector ------------------------------------------------------------------------------------
def test_ga_default_is_minus_forget_nll(model, reference_model):
    loss, logs, method = _loss("ga", model, reference_model)
    assert not method.needs_retain() and method.reference_mode(lora=False) is None
    _check(loss, -_mean_nll(model, _forget_seqs()))
    assert "retain_nll" not in logs


def test_ga_with_retain_weight_is_restor_ga_ft(model, reference_model):
    # GA_FT: loss = -NLL(forget) + gamma * NLL(retain)
    loss, logs, method = _loss("ga", model, reference_model, retain_weight=0.7)
    assert method.needs_retain()
    _check(loss, -_mean_nll(model, _forget_seqs()), 0.7 * _mean_nll(model, RETAIN))
    assert math.isclose(float(logs["retain_nll"]), _mean_nll(model, RETAIN), **TOL)


def test_graddiff(model, reference_model):
    loss, _, _ = _loss("graddiff", model, reference_model, forget_weight=1.5, retain_weight=0.4)
    _check(loss, -1.5 * _mean_nll(model, _forget_seqs()), 0.4 * _mean_nll(model, RETAIN))


def test_task_vector_training_loss_is_forget_nll(model, reference_model):
    loss, _, _ = _loss("task_vector", model, reference_model)
    _check(loss, _mean_nll(model, _forget_seqs()))


# -- KL -----------------------------------------------------------------------------------------------------------
def test_kl_default_is_tofu_kl(model, reference_model):
    loss, logs, _ = _loss("kl", model, reference_model, forget_weight=1.0, retain_weight=2.0)
    _check(loss, -_mean_nll(model, _forget_seqs()), 2.0 * _kl_ref_to_model(model, reference_model, RETAIN))
    assert math.isclose(float(logs["retain_nll"]), _mean_nll(model, RETAIN), **TOL)


def test_kl_cross_entropy_forget_and_nll_retain_is_restor_kl_ft(model, reference_model):
    # KL_FT: loss = -gamma * kl_loss(p_theta, p_ref) on forget + NLL(retain)
    loss, logs, _ = _loss("kl", model, reference_model, forget_term="cross_entropy", forget_weight=0.6,
                          retain_term="nll", retain_weight=1.0)
    cross_entropy = _cross_entropy_all_positions(model, reference_model, _forget_batch())
    _check(loss, -0.6 * cross_entropy, _mean_nll(model, RETAIN))
    assert math.isclose(float(logs["forget_ce"]), cross_entropy, **TOL)
    # padding counts in the official reduction: averaging over the real positions only gives another value
    real = _forget_batch()["attention_mask"].bool()
    assert real.sum() < real.numel()


def test_kl_cross_entropy_forget_with_kl_retain(model, reference_model):
    loss, _, _ = _loss("kl", model, reference_model, forget_term="cross_entropy", retain_term="kl",
                       retain_weight=3.0)
    _check(loss, -_cross_entropy_all_positions(model, reference_model, _forget_batch()),
           3.0 * _kl_ref_to_model(model, reference_model, RETAIN))


def test_kl_nll_forget_with_nll_retain_needs_no_reference(model, reference_model):
    loss, _, method = _loss("kl", model, reference_model, retain_term="nll", retain_weight=0.5)
    assert method.reference_mode(lora=False) is None
    _check(loss, -_mean_nll(model, _forget_seqs()), 0.5 * _mean_nll(model, RETAIN))


# -- NPO ----------------------------------------------------------------------------------------------------------
NPO_FORMULAS = {"sequence": _npo_sequence, "batch_mean_token": _npo_batch_mean_token, "token": _npo_token}


@pytest.mark.parametrize("reference", ["cached", "live"])
@pytest.mark.parametrize("log_ratio", list(NPO_FORMULAS))
def test_npo_log_ratio_variants(model, reference_model, log_ratio, reference):
    beta = 0.1 if log_ratio != "sequence" else 0.5
    loss, logs, method = _loss("npo", model, reference_model, reference, log_ratio=log_ratio, beta=beta,
                               reference=reference)
    assert (method.reference_cache is not None) == (reference == "cached")
    _check(loss, NPO_FORMULAS[log_ratio](model, reference_model, beta))
    assert "retain_nll" not in logs


@pytest.mark.parametrize("log_ratio", list(NPO_FORMULAS))
def test_npo_rt_adds_the_retain_nll(model, reference_model, log_ratio):
    loss, _, method = _loss("npo_rt", model, reference_model, "cached", log_ratio=log_ratio, retain_weight=0.3)
    assert method.needs_retain()
    _check(loss, NPO_FORMULAS[log_ratio](model, reference_model, 0.1), 0.3 * _mean_nll(model, RETAIN))


def test_npo_with_retain_weight_is_restor_npo(model, reference_model):
    # RESTOR NPO.py: -(2/0.1) logsigmoid(0.1 * (NLL_theta - NLL_ref)) + gamma * NLL(retain)
    loss, _, _ = _loss("npo", model, reference_model, "cached", log_ratio="batch_mean_token", beta=0.1,
                       retain_weight=1.0)
    _check(loss, _npo_batch_mean_token(model, reference_model, 0.1), _mean_nll(model, RETAIN))


def test_npo_variants_differ_on_this_batch(model, reference_model):
    values = [NPO_FORMULAS[name](model, reference_model, 0.1) for name in NPO_FORMULAS]
    assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]) > 1e-3


def test_npo_token_cache_matches_live_per_token_values(model, reference_model):
    _, _, method = _loss("npo", model, reference_model, "cached", log_ratio="token")
    cache = method.reference_cache
    for index, seq in enumerate(FORGET):
        expected = _token_logprobs(reference_model, seq)
        assert int(cache.count[index]) == len(expected)
        got = cache.token_logprob[index, : len(expected)].tolist()
        assert all(math.isclose(a, b, **TOL) for a, b in zip(got, expected))
        assert math.isclose(float(cache.nll_sum[index]), -sum(expected), **TOL)


# -- SimNPO -------------------------------------------------------------------------------------------------------
def test_simnpo(model, reference_model):
    beta, gamma = 0.5, 0.3
    loss, _, _ = _loss("simnpo", model, reference_model, beta=beta, gamma=gamma, forget_weight=0.8,
                       retain_weight=0.5)
    values = []
    for seq in _forget_seqs():
        logprobs = _token_logprobs(model, seq)
        values.append(-(2 / beta) * _log_sigmoid(-(beta / len(logprobs)) * sum(logprobs) - gamma))
    _check(loss, 0.8 * sum(values) / len(values), 0.5 * _mean_nll(model, RETAIN))


# -- RMU ----------------------------------------------------------------------------------------------------------
def _rmu_control(hidden_size, coeff, seed=0):
    direction = torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed)).double()
    return coeff * direction / direction.norm()


def test_rmu(model, reference_model):
    layer, coeff, alpha = 0, 3.0, 5.0
    loss, _, _ = _loss("rmu", model, reference_model, layer=layer, update_layers="0", steering_coeff=coeff,
                            retain_weight=alpha)
    control = _rmu_control(model.config.hidden_size, coeff)
    total, count = 0.0, 0
    for seq in _forget_seqs():
        hidden = _hidden(model, seq, layer)
        for t in range(len(seq)):
            total += sum((hidden[t, d] - control[d]).item() ** 2 for d in range(hidden.size(1)))
            count += hidden.size(1)
    forget_part = total / count
    total, count = 0.0, 0
    for seq in RETAIN:
        hidden, ref_hidden = _hidden(model, seq, layer), _hidden(reference_model, seq, layer)
        total += ((hidden - ref_hidden) ** 2).sum().item()
        count += hidden.numel()
    _check(loss, forget_part, alpha * total / count)


def test_rmu_last_layer_steers_the_decoder_layer_not_the_final_norm(model, reference_model):
    """hidden_states[-1] of a Hugging Face model is the final norm's output; RMU must steer the last decoder layer's
    own output h, which the final norm maps to hidden_states[-1] and which differs from it."""
    last = model.config.num_hidden_layers - 1
    _, _, method = _loss("rmu", model, reference_model, layer=last, update_layers=str(last), steering_coeff=3.0)
    seq = _forget_seqs()[0]
    batch = {"input_ids": torch.tensor([seq]), "attention_mask": torch.ones(1, len(seq), dtype=torch.long)}
    with torch.no_grad():
        captured = method.hidden(model, batch)[0]
        final = model(torch.tensor([seq]), output_hidden_states=True).hidden_states[-1][0]
        normed = model.model.norm(captured).double()
        captured, final = captured.double(), final.double()
    assert torch.allclose(normed, final, atol=1e-5)
    assert (captured - final).abs().max().item() > 1e-2
    # for a middle layer the hook and hidden_states agree
    method.layer = 0
    method._layers.clear()
    with torch.no_grad():
        assert torch.allclose(method.hidden(model, batch)[0].double(), _hidden(model, seq, 0), atol=1e-6)


def test_rmu_adaptive_coefficient(model, reference_model):
    _, _, method = _loss("rmu", model, reference_model, layer=0, update_layers="0", steering_coeff=0.0,
                         adaptive_scale=4.0)
    # setup() ran on ctx.model (here the model itself): c = 4 * mean activation norm over the forget tokens
    norms = [_hidden(model, seq, 0)[t].norm().item() for seq in FORGET for t in range(len(seq))]
    expected = 4.0 * sum(norms) / len(norms)
    assert math.isclose(float(method.control.norm()), expected, rel_tol=1e-5)


# -- presets and hyperparameters ----------------------------------------------------------------------------------
def test_paper_presets_resolve_to_the_restor_variants():
    from unlearners import get_method, resolve_hparams
    from unlearners.hparams import RESTOR_GAMMA
    from unlearners.runner import make_method

    ga = make_method("ga", preset="paper")
    assert ga.hparams.retain_weight == RESTOR_GAMMA > 0 and ga.needs_retain()

    kl = make_method("kl", preset="paper")
    assert (kl.hparams.forget_term, kl.hparams.retain_term) == ("cross_entropy", "nll")
    assert (kl.hparams.forget_weight, kl.hparams.retain_weight) == (RESTOR_GAMMA, 1.0)
    assert kl.reference_mode(lora=False) == "live" and kl.reference_mode(lora=True) == "adapter"

    for name in ("npo", "npo_rt"):
        npo = resolve_hparams(get_method(name), preset="paper")
        assert (npo.log_ratio, npo.beta, npo.retain_weight) == ("batch_mean_token", 0.1, RESTOR_GAMMA)
        assert make_method(name, preset="paper").reference_mode(lora=False) == "cached"

    # the variant fields are in the hyperparameters every run record stores
    for name, fields in {"ga": ["retain_weight"], "kl": ["forget_term", "retain_term"], "npo": ["log_ratio"]}.items():
        recorded = dataclasses.asdict(make_method(name, preset="paper").hparams)
        assert set(fields) <= set(recorded)

    # a preset then --set still works, and the defaults and 7b presets are unchanged
    assert resolve_hparams(get_method("kl"), preset="paper", overrides=["forget_weight=0.5"]).forget_weight == 0.5
    assert resolve_hparams(get_method("ga")).retain_weight == 0.0
    default_kl = resolve_hparams(get_method("kl"))
    assert (default_kl.forget_term, default_kl.retain_term) == ("nll", "kl")
    assert resolve_hparams(get_method("npo")).log_ratio == "sequence"
    for name in ("ga", "kl", "npo", "npo_rt"):
        assert {"7b", "paper"} <= set(get_method(name).presets)


def test_bad_variant_names_are_one_line_errors():
    from unlearners import UnlearnError, get_method, resolve_hparams

    with pytest.raises(UnlearnError, match="'forget_term' must be one of nll, cross_entropy"):
        resolve_hparams(get_method("kl"), overrides=["forget_term=kl"])
    with pytest.raises(UnlearnError, match="'retain_term' must be one of kl, nll"):
        resolve_hparams(get_method("kl"), overrides=["retain_term=ce"])
    with pytest.raises(UnlearnError, match="'log_ratio' must be one of sequence, batch_mean_token, token"):
        resolve_hparams(get_method("npo"), overrides=["log_ratio=mean"])
    with pytest.raises(UnlearnError, match="'retain_weight' must be >= 0"):
        resolve_hparams(get_method("ga"), overrides=["retain_weight=-1"])
