"""Hugging Face BERT-style sequence classifiers as ``nclayers`` models (benshaul2022 §5, GLUE).

:class:`SequenceClassifier` wraps a ``BertForSequenceClassification`` (or any Hugging Face model
laid out as ``<base>.embeddings``, ``<base>.encoder.layer.*``, ``<base>.pooler``, ``dropout``,
``classifier: nn.Linear``) so that :func:`nclayers.taps.tap`, :func:`nclayers.measure`,
:func:`nclayers.train.fit` (CE, MSE, SVSL) and :mod:`nclayers.epoch_metrics` work on it
unchanged: its forward takes token ids ``(N, T)`` and returns logits ``(N, C)``, it has
``tapped_layers`` and ``classifier`` like :mod:`nclayers.models`.

What a BERT does that the library does not expect, and how the adapter answers it:

- the forward takes ``input_ids`` and an attention mask and returns a ``ModelOutput``: the
  adapter builds the mask from ``pad_token_id`` (1 where a token is not padding) and returns
  the logits tensor;
- a hidden state is ``(N, T, H)``, one vector per token, and a ``BertLayer`` returned a tuple
  before transformers 5: every tapped point is a small :class:`TokenReduction` module of the
  adapter, run from a forward hook on the Hugging Face module it reads, that takes the output
  (its first element if a tuple or ``ModelOutput``) to one vector per sample. The hook returns
  nothing, so the network computes exactly what it computes without the adapter; the reduction
  is a side branch that exists only to be tapped (and to carry SVSL's gradient back).

Tapped layers (module names of the adapter, in depth order): ``"input"`` (the token ids, layer
0, as every model of the library), ``"embeddings"`` (the embedding output, benshaul2022's first
BERT layer), ``"encoder.layer.0"`` … ``"encoder.layer.{L-1}"`` (each transformer layer's output,
HF's ``hidden_states[1:]``), ``"pooler"`` (tanh(W h_[CLS]) of the last layer, which the
classifier reads through dropout: the penultimate features) and ``"classifier"`` (the logits,
as ResNet's ``taps="stages"`` taps "FC"). The Hugging Face modules themselves keep their own
names under the base prefix (``"bert.encoder.layer.0"``, …) and the state dict is the Hugging
Face model's own (``hf_model.load_state_dict(adapter.state_dict())`` round-trips).

The per-sample reduction (``reduce``):

- ``"flatten"`` (default): all T token vectors concatenated, T·H features. This is how we read
  benshaul2022 App. B: features are the ``hidden_states`` of the model, and every sequence is
  padded to 32 tokens "both for computing NCC mismatch and maintaining same size features",
  which only matters if the features hold every position (a [CLS] vector is H wide whatever the
  length). Pad positions are part of the features, as there.
- ``"cls"``: the vector at position 0, the [CLS] token: what BERT's own pooler and classifier
  read, the usual sentence embedding, H features; with it NC3 ``pabs`` of a hidden layer has a
  consumer of matching width (the next layer's query projection).
- ``"mean"``: the mean over the non-padding tokens (the attention mask), H features.

Two-dimensional outputs (the pooler, the logits) are kept as they are under every choice.

Dropout: BERT's dropout layers draw from torch's global generator, not from the generator that
:func:`nclayers.train.fit` is given, so a run is reproducible bitwise when the global seed is
set before ``fit`` (``torch.manual_seed``), and a resumed run continues with another dropout
stream than an uninterrupted one (set ``hidden_dropout_prob=attention_probs_dropout_prob=0``,
e.g. :func:`tiny_bert`'s ``dropout=0``, where that matters).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nclayers.data import Splits

REDUCTIONS = ("flatten", "cls", "mean")


class TokenReduction(nn.Module):
    """One vector per sample from a Hugging Face module's output: ``(N, T, H)`` → ``(N, T·H)``
    (``"flatten"``), ``(N, H)`` at position 0 (``"cls"``) or the mean over the unmasked tokens
    (``"mean"``); a tuple or ``ModelOutput`` is read at its first element, a 2-D tensor kept as
    it is. :class:`SequenceClassifier` calls it from a forward hook (:meth:`hook`)."""

    def __init__(self, reduce: str = "flatten") -> None:
        super().__init__()
        if reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduce!r}; known: {', '.join(REDUCTIONS)}")
        self.reduce = reduce
        self.mask: Tensor | None = None  # (N, T), set by the adapter for "mean"

    def forward(self, output: Any) -> Tensor:
        h = output if isinstance(output, Tensor) else output[0]
        if h.dim() == 2:
            return h
        if h.dim() != 3:
            raise ValueError("expected hidden states (batch, tokens, hidden), "
                             f"got {tuple(h.shape)}")
        if self.reduce == "cls":
            return h[:, 0]
        if self.reduce == "mean":
            if self.mask is None:
                return h.mean(dim=1)
            mask = self.mask.to(h.dtype)[:, :, None]
            return (h * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return h.flatten(1)

    def hook(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        """A forward hook: reduce ``output`` through this module (so that taps on it fire) and
        leave the hooked module's output unchanged (returns None). A bound method, so the
        adapter still pickles and deep-copies."""
        self(output)


class SequenceClassifier(nn.Module):
    """A Hugging Face BERT-style ``*ForSequenceClassification`` as an ``nclayers`` model:
    ``forward(input_ids (N, T)) -> logits (N, C)``, ``tapped_layers``, ``classifier`` (the
    final ``nn.Linear``); see the module docstring for the taps and ``reduce``.

    The Hugging Face model's parts are taken over, not copied (parameters are shared with
    ``hf_model``): its base model (``hf_model.base_model_prefix``, ``"bert"``), its ``dropout``
    and its ``classifier``, and the forward is ``BertForSequenceClassification``'s for
    single-label classification: ``classifier(dropout(base(ids, mask).pooler_output))``.
    """

    def __init__(self, hf_model: nn.Module, pad_token_id: int = 0, reduce: str = "flatten",
                 sep_token_id: int | None = None) -> None:
        super().__init__()
        prefix = getattr(hf_model, "base_model_prefix", "")
        base = getattr(hf_model, prefix, None) if prefix else None
        head = getattr(hf_model, "classifier", None)
        parts = ("embeddings", "encoder", "pooler")
        if base is None or not all(getattr(base, p, None) is not None for p in parts) \
                or not isinstance(head, nn.Linear):
            raise ValueError(
                f"{type(hf_model).__name__} is not laid out as a BERT-style sequence classifier "
                "(<base>.embeddings, <base>.encoder.layer, <base>.pooler and an nn.Linear "
                "`classifier`), e.g. transformers.BertForSequenceClassification")
        self.pad_token_id, self.reduce, self.base_prefix = pad_token_id, reduce, prefix
        self.sep_token_id = sep_token_id
        self.add_module(prefix, base)
        dropout = getattr(hf_model, "dropout", None)
        self.dropout = dropout if isinstance(dropout, nn.Module) else nn.Identity()
        self.classifier: nn.Linear = head
        # The tap points: side branches fed by hooks on the Hugging Face modules.
        self.embeddings = TokenReduction(reduce)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(TokenReduction(reduce) for _ in base.encoder.layer)
        self.pooler = TokenReduction(reduce)
        self._reductions = [self.embeddings, *self.encoder.layer, self.pooler]
        hooked = [base.embeddings, *base.encoder.layer, base.pooler]
        for module, reduction in zip(hooked, self._reductions, strict=True):
            module.register_forward_hook(reduction.hook)
        layers = [f"encoder.layer.{i}" for i in range(len(base.encoder.layer))]
        self.tapped_layers = ["input", "embeddings", *layers, "pooler", "classifier"]

    @property
    def base(self) -> nn.Module:
        """The Hugging Face base model (``self.bert`` for a BERT)."""
        return getattr(self, self.base_prefix)

    def attention_mask(self, input_ids: Tensor) -> Tensor:
        """1 where a token is not ``pad_token_id``, 0 at padding: (N, T), int64."""
        return (input_ids != self.pad_token_id).long()

    def token_type_ids(self, input_ids: Tensor) -> Tensor | None:
        """The segment ids a BERT tokenizer gives a sentence pair, rebuilt from the ids: 0 up
        to and including the first [SEP], 1 after it (padding 0); None without
        ``sep_token_id`` (every token in segment 0, as for single sentences)."""
        if self.sep_token_id is None:
            return None
        sep = (input_ids == self.sep_token_id).long()
        after_first = (sep.cumsum(dim=1) - sep) > 0
        return (after_first & (input_ids != self.pad_token_id)).long()

    def forward(self, input_ids: Tensor) -> Tensor:
        mask = self.attention_mask(input_ids)
        if self.reduce == "mean":
            for reduction in self._reductions:
                reduction.mask = mask
        try:
            pooled = self.base(input_ids=input_ids, attention_mask=mask,
                               token_type_ids=self.token_type_ids(input_ids)).pooler_output
        finally:
            for reduction in self._reductions:
                reduction.mask = None
        return self.classifier(self.dropout(pooled))


def bert(input_shape: tuple[int, ...], num_classes: int, pretrained: str = "bert-base-uncased",
         reduce: str = "flatten") -> SequenceClassifier:
    """The ``bert`` architecture: ``pretrained`` (a Hugging Face hub name, fetched once into its
    cache, or a local directory holding a model and its tokenizer) as a
    ``BertForSequenceClassification`` with a new ``num_classes`` head (drawn from torch's global
    generator: seed it first), wrapped in :class:`SequenceClassifier` with the tokenizer's pad
    and [SEP] ids. ``input_shape`` is ``(tokens,)``: a dataset of token ids made with the same
    tokenizer (the GLUE tasks' ``tokenizer`` option)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    _check_tokens(input_shape, bert_config(pretrained).max_position_embeddings)
    tokenizer = AutoTokenizer.from_pretrained(pretrained)
    hf = BertForSequenceClassification.from_pretrained(pretrained, num_labels=num_classes)
    return SequenceClassifier(hf, pad_token_id=tokenizer.pad_token_id, reduce=reduce,
                              sep_token_id=tokenizer.sep_token_id)


def bert_config(pretrained: str, local_only: bool = False) -> Any:
    """``pretrained``'s ``BertConfig`` (its config.json alone); with ``local_only``, from the
    Hugging Face cache or a local directory only (OSError where it is not there yet)."""
    from transformers import BertConfig

    return BertConfig.from_pretrained(pretrained, local_files_only=local_only)


def bert_tapped_layers(input_shape: tuple[int, ...], pretrained: str, reduce: str = "flatten"
                       ) -> list[str] | None:
    """The ``bert`` architecture's tapped layers, from its config alone and without fetching
    anything (for the checks before any job runs); None where the config is not on this
    machine yet (the train job fetches it). ValueError for a reduction or an input shape the
    model cannot take."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    try:
        config = bert_config(pretrained, local_only=True)
    except OSError:
        return None
    _check_tokens(input_shape, config.max_position_embeddings)
    layers = [f"encoder.layer.{i}" for i in range(config.num_hidden_layers)]
    return ["input", "embeddings", *layers, "pooler", "classifier"]


def _check_tokens(input_shape: tuple[int, ...], most: int) -> None:
    if len(input_shape) != 1:
        raise ValueError(f"bert takes token ids (a GLUE task: cola, sst2, mrpc, rte), not "
                         f"inputs of shape {tuple(input_shape)}")
    if input_shape[0] > most:
        raise ValueError(f"{input_shape[0]} tokens per sequence, but the model has "
                         f"{most} positions; lower the dataset's max_length")


def tiny_bert(num_classes: int = 2, *, vocab_size: int = 100, hidden_size: int = 32,
              num_layers: int = 2, num_heads: int = 2, intermediate_size: int = 64,
              max_length: int = 64, dropout: float = 0.1, initializer_range: float = 0.02,
              pad_token_id: int = 0, seed: int = 0) -> nn.Module:
    """A small randomly initialised ``BertForSequenceClassification`` built from a
    ``BertConfig`` (no download, no tokenizer), its initialisation drawn from ``seed`` without
    touching torch's global generator. ``dropout`` sets both the hidden and the attention
    dropout (Hugging Face's default is 0.1). ``initializer_range`` is the std of the normal
    initial weights (Hugging Face's default 0.02, BERT's own; about 0.2 lets a tiny BERT learn
    a toy task in a few epochs of the library's SGD)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                        num_hidden_layers=num_layers, num_attention_heads=num_heads,
                        intermediate_size=intermediate_size, max_position_embeddings=max_length,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        initializer_range=initializer_range, num_labels=num_classes,
                        pad_token_id=pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BertForSequenceClassification(config)


def synthetic_tokens(n: int, num_classes: int = 2, *, length: int = 16, vocab_size: int = 100,
                     markers: int = 3, seed: int = 0, cls_token_id: int = 1,
                     pad_token_id: int = 0) -> tuple[Tensor, Tensor]:
    """(token ids (n, length) int64, labels (n,)): [CLS], then a random number of random
    tokens (ids from ``2 + num_classes`` on) padded at the end, among which ``markers``
    positions hold the class's own token ``2 + y``: the class decides some tokens, so a
    classifier can learn it. Balanced classes, drawn from ``seed``."""
    if length < markers + 2:
        raise ValueError(f"length must be at least markers + 2 = {markers + 2}, got {length}")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    first = 2 + num_classes
    ids = torch.randint(first, vocab_size, (n, length), generator=g)
    ids[:, 0] = cls_token_id
    used = torch.randint(markers + 1, length, (n,), generator=g) + 1  # tokens incl. [CLS]
    for i in range(n):
        where = 1 + torch.randperm(int(used[i]) - 1, generator=g)[:markers]
        ids[i, where] = 2 + y[i]
        ids[i, int(used[i]):] = pad_token_id
    return ids, y


def token_splits(n_train: int = 96, n_test: int = 48, num_classes: int = 2, *, seed: int = 0,
                 **options: Any) -> Splits:
    """:func:`synthetic_tokens` as train and test :class:`~nclayers.data.Splits` (token ids
    as the features), the two splits drawn from different seeds."""
    x_train, y_train = synthetic_tokens(n_train, num_classes, seed=seed, **options)
    x_test, y_test = synthetic_tokens(n_test, num_classes, seed=seed + 1, **options)
    return Splits("tokens", x_train, y_train, x_test, y_test, num_classes)
