"""The optional model flagger (issue 12, item 8): a tiny token-classification model built here, with
weights set so that one made-up word is a person name; it may only add refusals."""

import pytest

from obclip_nodes.privacy import ExpansionError, expand_prompt

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "zorblax", "a", "woman", "on", "stage", "man", "muslim", "red", "apple"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("ner")
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", do_lower_case=True)
    fast.save_pretrained(d)
    h = 8
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=h, num_hidden_layers=0, num_attention_heads=1,
                     intermediate_size=8, max_position_embeddings=32, num_labels=3,
                     id2label={0: "O", 1: "B-PER", 2: "I-PER"}, label2id={"O": 0, "B-PER": 1, "I-PER": 2})
    torch.manual_seed(0)
    m = BertForTokenClassification(cfg).eval()
    person = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1])       # "zorblax" points this way; every other word
    other = torch.tensor([1.0, 1, -1, -1, 1, 1, -1, -1])        # the orthogonal way
    with torch.no_grad():
        m.bert.embeddings.word_embeddings.weight[:] = other
        m.bert.embeddings.word_embeddings.weight[VOCAB.index("zorblax")] = person
        m.bert.embeddings.position_embeddings.weight.zero_()
        m.bert.embeddings.token_type_embeddings.weight.zero_()
        m.classifier.weight[:] = torch.stack([other, person, -person]) * 2
        m.classifier.bias.zero_()
    m.save_pretrained(d, safe_serialization=True)
    return d


def test_flagger_adds_a_refusal_the_vocabulary_missed(model_dir):
    from obclip_nodes.privacy.flagger import ModelFlagger
    f = ModelFlagger(model_dir)
    assert [(x.word, x.type) for x in f.flag("zorblax on stage")] == [("zorblax", "name")]
    assert expand_prompt("zorblax on stage").n == 1                          # the vocabulary alone lets it through
    with pytest.raises(ExpansionError, match="'zorblax' \\(name\\): the token-classification model flags it"):
        expand_prompt("zorblax on stage", flagger=f)
    e = expand_prompt("zorblax on stage", flagger=f, allow_unprotected=True)
    assert e.outcome == "allowed" and [u.word for u in e.unprotected] == ["zorblax"]


def test_flagger_never_removes_protection(model_dir):
    from obclip_nodes.privacy.flagger import ModelFlagger
    f = ModelFlagger(model_dir)
    assert expand_prompt("a woman on stage", flagger=f).n == 2
    with pytest.raises(ExpansionError, match="'muslim' \\(religion\\)"):
        expand_prompt("a muslim woman", flagger=f)
    assert expand_prompt("a red apple", flagger=f).n == 1


def test_flagger_bad_directory_is_a_clear_error(tmp_path):
    from obclip_nodes.privacy.flagger import ModelFlagger
    with pytest.raises(ExpansionError, match="does not exist"):
        ModelFlagger(tmp_path / "missing")
    with pytest.raises(ExpansionError, match="cannot load the flagger model"):
        ModelFlagger(tmp_path)
