"""The DialogueRNN recurrence (Majumder, Poria, Hazarika, Mihalcea, Gelbukh and Cambria, "DialogueRNN:
An Attentive RNN for Emotion Detection in Conversations", AAAI 2019, §"Our Model").

One step of one direction, for utterance u_t (B, D) spoken by party s = s(u_t):

    global state    g_t     = GRU_G(g_{t-1}, u_t ⊕ q_{s,t-1})                  ("Global State")
    context         α       = softmax(u_tᵀ W_α [g_1, …, g_{t-1}]),  c_t = Σ_j α_j g_j
    party state     q_{s,t} = GRU_P(q_{s,t-1}, u_t ⊕ c_t)                      ("Party State")
    listeners       q_{i,t} = q_{i,t-1}  for every party i ≠ s                  (the paper's default)
    emotion         e_t     = GRU_E(e_{t-1}, q_{s,t})                           ("Emotion Representation")

BiDialogueRNN ("Bidirectional DialogueRNN") runs a second, separately parameterised recurrence over
the dialogue read backwards and concatenates both directions' e_t. The optional emotion attention
("DialogueRNN + Attention") lets every e_t attend over all emotion states of its dialogue, past
and future: β_t = softmax(e_tᵀ W_β [e_1, …, e_N]), ẽ_t = Σ_j β_tj e_j. (Sub-sections are named
rather than equations numbered: the paper text was not at hand to check the numbers; the updates
were checked against the authors' code, declare-lab/conv-emotion DialogueRNN/model.py.)

Choices where the paper is silent or its code differs (configurable where reasonable people differ):

* g_0, q_{i,0} and e_0 are zero; c_1 = 0, since the first utterance has no past global state;
* ``context_attention = "general"`` is the paper's α above; ``"simple"`` scores each past global
  state alone (softmax(w·g_j), no query), the variant the authors' code offers and MultiEMO uses;
* ``listener_update``: the paper's active-listener variant reads the listener's own visual cues,
  which per-utterance features do not carry; like the authors' code we update every listener with
  q_{i,t} = GRU_L(q_{i,t-1}, u_t ⊕ q_{s,t}) instead;
* ``state_dropout`` is applied to g_t, q_{s,t} (and the listeners' updates) and e_t *inside* the
  recurrence, so the next step reads the dropped-out state, as the authors' code does (rec_dropout);
* the backward direction reverses each dialogue within its own length — utterances *and* speakers.
  The original code reverses only the utterances, pairing each one with the wrong speaker; MultiEMO's
  copy of it reverses both;
* W_β has a bias, as in the authors' code ("general2" attention); padded utterances are masked out.

Padding: padded utterances come after the real ones in both directions (the backward direction
reverses within each dialogue's length), and the emotion attention masks them, so real outputs
never depend on padded positions. Padded speakers may hold any value and are mapped to party 0.
Only the L time steps are a Python loop; each step is batched over the B dialogues, with the party
states held as one (B, P, D_p) tensor indexed by speaker. The context attention re-reads every past
global state at each step, so its time and memory grow with L², as in the authors' code.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ContextAttentionKind = Literal["general", "simple"]


class ContextAttention(nn.Module):
    """Attention over the past global states: u_t (B, D), history (B, T, D_g) → c_t (B, D_g)."""

    def __init__(self, input_size: int, global_size: int, kind: ContextAttentionKind) -> None:
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.query = nn.Linear(input_size, global_size, bias=False)  # W_α
        else:
            self.score = nn.Linear(global_size, 1, bias=False)

    def forward(self, utterance: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        if self.kind == "general":
            scores = torch.bmm(history, self.query(utterance).unsqueeze(-1)).squeeze(-1)  # (B, T)
        else:
            scores = self.score(history).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores, dim=-1)  # (B, T)
        return torch.bmm(weights.unsqueeze(1), history).squeeze(1)  # (B, D_g)


class EmotionAttention(nn.Module):
    """ẽ_t = Σ_j softmax_j((W_β e_t + b) · e_j) e_j over the real utterances: (B, L, E), mask → (B, L, E)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.transform = nn.Linear(size, size)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.bmm(self.transform(states), states.transpose(1, 2))  # (B, L query, L key)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        return torch.bmm(torch.softmax(scores, dim=-1), states)  # (B, L, E)


class DialogueRNNDirection(nn.Module):
    """One direction of the recurrence: x (B, L, D), speakers (B, L) in [0, P) → e (B, L, D_e)."""

    def __init__(
        self,
        *,
        input_size: int,
        parties: int,
        global_size: int,
        party_size: int,
        emotion_size: int,
        context_attention: ContextAttentionKind,
        listener_update: bool,
        state_dropout: float,
    ) -> None:
        super().__init__()
        self.parties = parties
        self.global_size = global_size
        self.party_size = party_size
        self.emotion_size = emotion_size
        self.global_cell = nn.GRUCell(input_size + party_size, global_size)  # GRU_G
        self.party_cell = nn.GRUCell(input_size + global_size, party_size)  # GRU_P
        self.listener_cell = nn.GRUCell(input_size + party_size, party_size) if listener_update else None  # GRU_L
        self.emotion_cell = nn.GRUCell(party_size, emotion_size)  # GRU_E
        self.attention = ContextAttention(input_size, global_size, context_attention)
        self.dropout = nn.Dropout(state_dropout)

    def forward(
        self, x: torch.Tensor, speakers: torch.Tensor, *, keep_party_states: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """With ``keep_party_states`` also return every party's state after each step (B, L, P, D_p)."""
        batch, length, _ = x.shape
        rows = torch.arange(batch, device=x.device)
        party = x.new_zeros(batch, self.parties, self.party_size)  # (B, P, D_p)
        global_state = x.new_zeros(batch, self.global_size)  # (B, D_g)
        emotion = x.new_zeros(batch, self.emotion_size)  # (B, D_e)
        history: list[torch.Tensor] = []  # g_1 … g_{t-1}, each (B, D_g)
        emotions, party_states = [], []
        for t in range(length):
            utterance, speaker = x[:, t], speakers[:, t]  # (B, D), (B,)
            previous = party[rows, speaker]  # (B, D_p): q_{s,t-1}
            global_state = self.dropout(self.global_cell(torch.cat([utterance, previous], dim=-1), global_state))
            if history:
                context = self.attention(utterance, torch.stack(history, dim=1))  # (B, D_g)
            else:
                context = torch.zeros_like(global_state)
            history.append(global_state)
            spoken = self.dropout(self.party_cell(torch.cat([utterance, context], dim=-1), previous))  # q_{s,t}
            listened = party if self.listener_cell is None else self._listen(utterance, spoken, party)
            speaking = F.one_hot(speaker, self.parties).bool().unsqueeze(-1)  # (B, P, 1)
            party = torch.where(speaking, spoken.unsqueeze(1), listened)  # (B, P, D_p)
            emotion = self.dropout(self.emotion_cell(spoken, emotion))  # (B, D_e)
            emotions.append(emotion)
            if keep_party_states:
                party_states.append(party)
        out = torch.stack(emotions, dim=1)  # (B, L, D_e)
        return (out, torch.stack(party_states, dim=1)) if keep_party_states else out

    def _listen(self, utterance: torch.Tensor, spoken: torch.Tensor, party: torch.Tensor) -> torch.Tensor:
        """Active listeners: every party reads u_t ⊕ q_{s,t}; (B, D), (B, D_p), (B, P, D_p) → (B, P, D_p)."""
        batch, parties, size = party.shape
        heard = torch.cat([utterance, spoken], dim=-1).unsqueeze(1).expand(-1, parties, -1)  # (B, P, D + D_p)
        updated = self.listener_cell(heard.reshape(batch * parties, -1), party.reshape(batch * parties, size))
        return self.dropout(updated.view(batch, parties, size))


def reversal_index(mask: torch.Tensor) -> torch.Tensor:
    """Index (B, L) that reverses each dialogue within its length and leaves padding in place.

    Applying it twice is the identity, so the same index maps the backward outputs back.
    """
    lengths = mask.sum(dim=1, keepdim=True)  # (B, 1)
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)  # (1, L)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, L, D) reordered along L by index (B, L)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class DialogueRNN(nn.Module):
    """(Bi)DialogueRNN: x (B, L, D), speakers (B, L), mask (B, L) → emotion states (B, L, output_size).

    ``output_size`` is D_e, or 2·D_e when bidirectional.
    """

    def __init__(
        self,
        *,
        input_size: int,
        parties: int,
        global_size: int,
        party_size: int,
        emotion_size: int,
        bidirectional: bool = True,
        context_attention: ContextAttentionKind = "general",
        listener_update: bool = False,
        emotion_attention: bool = False,
        state_dropout: float = 0.0,
        emotion_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        sizes = dict(
            input_size=input_size,
            parties=parties,
            global_size=global_size,
            party_size=party_size,
            emotion_size=emotion_size,
            context_attention=context_attention,
            listener_update=listener_update,
            state_dropout=state_dropout,
        )
        self.forward_direction = DialogueRNNDirection(**sizes)
        self.backward_direction = DialogueRNNDirection(**sizes) if bidirectional else None
        self.output_size = emotion_size * (2 if bidirectional else 1)
        self.emotion_dropout = nn.Dropout(emotion_dropout)
        self.emotion_attention = EmotionAttention(self.output_size) if emotion_attention else None

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        speakers = torch.where(mask, speakers, 0)  # padded speakers can be out of range (collate uses P)
        states = self.forward_direction(x, speakers)  # (B, L, D_e)
        if self.backward_direction is not None:
            order = reversal_index(mask)  # (B, L)
            backward = self.backward_direction(gather_steps(x, order), speakers.gather(1, order))
            states = torch.cat([states, gather_steps(backward, order)], dim=-1)  # (B, L, 2·D_e)
        states = self.emotion_dropout(states)
        if self.emotion_attention is not None:
            states = self.emotion_attention(states, mask)
        return states
