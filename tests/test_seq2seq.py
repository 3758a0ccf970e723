"""The encoder-decoder and its metrics: memorisation, padding, EOS, batch-size invariance."""

import torch

from gfseq.data.progeval import EOS, GO, PAD, Example, collate, decode, encode
from gfseq.metrics import Scores, greedy_rows, is_exact, teacher_forced
from gfseq.models.seq2seq import Seq2Seq, Seq2SeqShape, matched_shape
from gfseq.progeval_task import score


def programs(n: int, length: int = 1, nesting: int = 2, seed: int = 3) -> list[Example]:
    from progeval.execute import run_trusted
    from progeval.generator import generate_program

    out = []
    for i in range(n):
        p = generate_program(seed, "train", length, nesting, i)
        out.append(Example(f"p{i}", p.source, run_trusted(p.source), length, nesting))
    return out


def test_a_tiny_gf_lstm_memorises_64_programs_exactly():
    torch.manual_seed(0)
    examples = programs(64)
    model = Seq2Seq(Seq2SeqShape("lstm", "gf", 2, 64, 16))
    b = collate(examples)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    exact = 0.0
    for step in range(1, 2001):
        model.train()
        _, loss = model(b.src, b.src_lengths, b.tgt_in, b.tgt_out)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            exact = score(model, examples, "cpu", 64, "train", "gf")[0].overall().exact_match
            if exact == 1.0:
                break
    assert exact == 1.0, f"exact match {exact} after {step} steps"


def test_teacher_forced_counts_ignore_padding_and_greedy_stops_at_eos():
    tgt_out = torch.tensor([[5, 6, EOS, PAD, PAD], [7, EOS, PAD, PAD, PAD]])
    logits = torch.full((2, 5, 40), -1.0)
    # row 0: right, wrong, right (EOS); padding positions "predict" PAD, which must not count
    for pos, tok in enumerate([5, 9, EOS, PAD, PAD]):
        logits[0, pos, tok] = 1.0
    for pos, tok in enumerate([7, 3, PAD, PAD, PAD]):  # row 1: EOS missed
        logits[1, pos, tok] = 1.0
    right, counted = teacher_forced(logits, tgt_out)
    assert right == [2, 1] and counted == [3, 2]
    rows = greedy_rows(torch.tensor([encode("12") + [EOS] + encode("34"), encode("12") + [PAD, PAD, PAD]]))
    assert rows == [("12", True), ("12<pad><pad><pad>", False)]  # what follows EOS is not part of the answer
    assert is_exact("12", True, "12") and not is_exact("12", False, "12")
    assert decode([*encode("-4"), EOS, *encode("9")]) == "-4"
    # special tokens before EOS are not silently dropped: "1<go>2" is not "12"
    ((text, eos),) = greedy_rows(torch.tensor([[encode("1")[0], GO, encode("2")[0], EOS]]))
    assert text == "1<go>2" and not is_exact(text, eos, "12")


def test_scores_are_sums_over_counts_not_means_of_batches():
    s = Scores()
    s.add((1, 1), 9, 10, True)  # a long target
    s.add((1, 1), 0, 2, False)  # a short one
    overall = s.overall()
    assert overall.char_accuracy == 9 / 12  # not (0.9 + 0.0) / 2
    assert overall.exact_match == 0.5


def test_scores_do_not_depend_on_the_batch_size():
    torch.manual_seed(1)
    examples = programs(23, length=2, nesting=2)
    model = Seq2Seq(Seq2SeqShape("gru", "gf", 2, 16, 8)).double()
    by_size = [score(model, examples, "cpu", size, "test", "gf")[0].to_dict() for size in (1, 5, 23)]
    assert by_size[0] == by_size[1] == by_size[2]


def test_matched_shapes_are_within_two_percent_and_count_like_the_module():
    base = Seq2SeqShape("lstm", "stacked", 2, 128, 32)
    gf = matched_shape("lstm", "gf", 2, 32, base.num_parameters())
    assert gf.hidden < 128 and abs(gf.num_parameters() / base.num_parameters() - 1) < 0.02
    for shape in (base, gf):
        assert shape.num_parameters() == sum(p.numel() for p in Seq2Seq(shape).parameters())
