import pytest

from charter.constitution import parse_constitution
from charter.core.errors import InputError
from charter.train.routing import UNROUTED, GradientRouter, RoutingPlan, block_index, group_key
from charter.train.sampler import GroupedBatchSampler
from tests.train_fixtures import ROUTED_CONSTITUTION


def test_block_index_reads_plain_and_peft_names():
    assert block_index("model.layers.7.self_attn.q_proj.weight") == 7
    assert block_index("base_model.model.model.layers.12.mlp.up_proj.lora_A.default.weight") == 12
    assert block_index("transformer.h.3.attn.c_attn.weight") == 3
    assert block_index("model.embed_tokens.weight") is None
    assert block_index("lm_head.weight") is None


def test_plan_maps_depths_to_thirds_and_unions_groups():
    plan = RoutingPlan.from_constitution(parse_constitution(ROUTED_CONSTITUTION), 6)
    assert plan.blocks_for("deep-one") == [4, 5]
    assert plan.blocks_for("shallow-one") == [0, 1]
    assert plan.blocks_for(group_key(["shallow-one", "deep-one"])) == [0, 1, 4, 5]
    assert plan.blocks_for(UNROUTED) == list(range(6))
    off = RoutingPlan.from_constitution(parse_constitution(ROUTED_CONSTITUTION), 6, enabled=False)
    assert off.blocks_for("deep-one") == list(range(6))
    with pytest.raises(InputError, match="'nope' is not in the constitution"):
        plan.check_known(["nope"], "d.jsonl", 3)


def test_router_freezes_non_block_parameters_and_switches_blocks(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # 4 blocks
    plan = RoutingPlan(n_blocks=4, principle_blocks={"p": [3]})
    router = GradientRouter(model, plan)
    assert not model.model.embed_tokens.weight.requires_grad
    router.activate("p")
    on = {block_index(n) for n, p in model.named_parameters() if p.requires_grad}
    assert on == {3}
    router.release()
    assert all(p.requires_grad for n, p in model.named_parameters() if block_index(n) is not None)


def test_routed_and_unrouted_runs_train_the_same_parameter_set(tiny_model_dir):
    """The unrouted run is the baseline a routed run is compared with: it must train the same
    parameters (every block, nothing outside the blocks), not also the embeddings, norm and head."""
    from transformers import AutoModelForCausalLM

    trainable = {}
    for enabled in (True, False):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # 4 blocks
        names = {id(p): n for n, p in model.named_parameters()}
        router = GradientRouter(model, RoutingPlan(n_blocks=4, principle_blocks={"p": [3]}, enabled=enabled))
        assert not model.model.embed_tokens.weight.requires_grad and not model.model.norm.weight.requires_grad
        assert not model.lm_head.weight.requires_grad
        trainable[enabled] = {names[id(p)] for p in router.trainable()}
        assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable[enabled]
        router.activate("p")  # routed: block 3 only; unrouted: every block still
        on = {block_index(n) for n, p in model.named_parameters() if p.requires_grad}
        assert on == ({3} if enabled else {0, 1, 2, 3})
    assert trainable[True] == trainable[False] and all(block_index(n) is not None for n in trainable[True])
    assert RoutingPlan(4, {}, enabled=False).to_json()["non_block_parameters"] == "frozen"


def test_grouped_batches_are_homogeneous_complete_and_deterministic():
    groups = ["a"] * 7 + ["b"] * 3 + ["a+b"] * 2
    s = GroupedBatchSampler(groups, batch_size=3, seed=1)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(12))
    assert all(len({groups[i] for i in b}) == 1 and len(b) <= 3 for b in batches)
    assert batches == list(GroupedBatchSampler(groups, batch_size=3, seed=1))
    s.set_epoch(1)
    assert list(s) != batches
