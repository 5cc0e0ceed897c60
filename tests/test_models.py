"""Models: output shapes, layers that partition the parameters (the default rule, its
overrides and the built-in models' historical groups), and models declared in the config
by a factory (TinyCNN below, built from this file and from its module path)."""

import copy
import shutil
from pathlib import Path

import pytest
import torch
from schema_defaults import data_source, dropout_model_config, model_config, train_config
from torch import nn

from memloc.config import ConfigError, load_config, resolve_factories
from memloc.config_checks import check_config
from memloc.core.data.noise import make_corrupted_table
from memloc.core.data.run_data import RunData, training_set
from memloc.core.models.blocks import ConvBN
from memloc.core.models.build import ModelConfig, build_model
from memloc.core.models.config import planning_config
from memloc.core.models.factory import call_factory, resolve_factory
from memloc.core.models.layer_rule import model_layers, named_modules_or_error, rule_layers
from memloc.core.models.zoo import resnet9
from memloc.core.train.checkpoints import list_checkpoints, load_checkpoint, model_from_checkpoint
from memloc.core.train.run import train
from memloc.layers.plan import layer_names
from memloc.layers.retraining import retrain_layer
from memloc.layers.rewinding import layer_state_keys

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "tests" / "config" / "test.yaml"
THIS_FILE = f"{Path(__file__).resolve()}:build"
CPU = torch.device("cpu")
TINY_LAYERS = ["features.0", "features.1", "features.2", "classifier"]


# -- a custom model (not a ResNet), declared through a factory ------------------------------


class TinyCNN(nn.Module):
    """Three conv-BN-ReLU blocks (a container of repeated blocks), a pool, a linear classifier."""

    def __init__(self, num_classes: int, in_channels: int, width: int):
        super().__init__()
        self.features = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
            for c_in, c_out in ((in_channels, width), (width, 2 * width), (2 * width, 2 * width))
        ))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def build(num_classes: int, in_channels: int, image_size: int, width: int = 4) -> TinyCNN:
    return TinyCNN(num_classes, in_channels, width)


def not_a_module(num_classes, in_channels, image_size):
    return "a string"


def tiny(factory: str = THIS_FILE, **fields) -> ModelConfig:
    return model_config("tinycnn", 10, 1, 28, factory=factory, **fields)


# -- built-in models ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg,layers",
    [
        (model_config("resnet9", 10, 3, 32, width=0.25), [f"layer{i}" for i in range(1, 10)]),
        (model_config("resnet9", 7, 1, 28, width=0.125), [f"layer{i}" for i in range(1, 10)]),
        (model_config("resnet50", 10, 1, 28), ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]),
        (
            model_config("vit_small", 10, 3, 32, patch_size=4, dim=32, depth=3, heads=4, mlp_dim=64),
            ["embedding", "block1", "block2", "block3", "head"],
        ),
        (tiny(), TINY_LAYERS),
    ],
)
def test_shapes_and_layer_partition(cfg, layers):
    model = build_model(cfg)
    x = torch.randn(2, cfg.in_channels, cfg.image_size, cfg.image_size)
    assert model(x).shape == (2, cfg.num_classes)
    found = model_layers(model)
    assert [layer.name for layer in found] == layers
    ids = [id(p) for layer in found for p in layer.parameters()]
    assert len(ids) == len(set(ids))  # no parameter in two layers
    assert set(ids) == {id(p) for p in model.parameters()}  # every parameter in one
    assert all(layer.numel() > 0 for layer in found)


def test_resnet9_matches_the_paper():
    model = resnet9(10, 3, width=1.0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128, 128, 256, 256, 256, 128]
    assert convs[1].kernel_size == (5, 5) and convs[1].stride == (2, 2)
    assert convs[-1].padding == (0, 0)
    linear = model_layers(model)[-1].modules[0]
    assert isinstance(linear, nn.Linear) and linear.bias is None
    half = resnet9(10, 3, width=0.5)
    assert [m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)][0] == 32


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'resnet18'"):
        build_model(model_config("resnet18", 10, 3, 32))


@pytest.mark.parametrize("placement", [None, "stages", "blocks"])
def test_rule_gives_resnet9s_conv_bn_blocks_and_linear(placement):
    # the hand-written rule it replaces: every ConvBN block, then the Linear, in module order
    if placement:
        model = dropout_model_config("resnet9", 10, 1, 28, width=0.125, dropout={"placement": placement}).build()
    else:
        model = build_model(model_config("resnet9", 10, 1, 28, width=0.125))
    expected = [m for m in model.modules() if isinstance(m, (ConvBN, nn.Linear))]
    assert len(expected) == 9
    assert [layer.modules for layer in rule_layers(model)] == [[m] for m in expected]
    layers = model_layers(model)  # with the historical names
    assert [layer.name for layer in layers] == [f"layer{i}" for i in range(1, 10)]
    assert [layer.modules for layer in layers] == [[m] for m in expected]


def unions_of_consecutive(rule, groups) -> bool:
    """Whether each group's parameters are those of the next run of consecutive rule layers."""
    rule = [{id(p) for p in layer.parameters()} for layer in rule]
    i = 0
    for group in groups:
        want, got = {id(p) for p in group.parameters()}, set()
        while got != want and i < len(rule) and rule[i] <= want:
            got |= rule[i]
            i += 1
        if got != want:
            return False
    return i == len(rule)


@pytest.mark.parametrize("cfg,rule_count", [
    (model_config("resnet50", 10, 1, 28), 2 + 3 + 4 + 6 + 3 + 1),  # conv1, bn1, each bottleneck, fc
    (model_config("vit_small", 10, 3, 32, patch_size=4, dim=32, depth=3, heads=4, mlp_dim=64), 1 + 3 + 2),
])
def test_rule_agrees_with_the_historical_groups_of_resnet50_and_vit(cfg, rule_count):
    model = build_model(cfg)
    rule, groups = rule_layers(model), model_layers(model)
    assert len(rule) == rule_count
    assert unions_of_consecutive(rule, groups)
    if cfg.name == "vit_small":  # the embedding and the blocks are exactly the rule's
        assert rule[0].paths == ["class_token", "conv_proj", "encoder.pos_embedding"]
        assert [set(layer.parameters()) for layer in rule[:4]] == [set(g.parameters()) for g in groups[:4]]
    assert not unions_of_consecutive(rule, groups[::-1])  # (the check can fail)


# -- the default rule and its overrides on a custom model -------------------------------------


def test_rule_splits_containers_of_repeated_blocks_only():
    model = build(10, 1, 28)
    assert [layer.name for layer in rule_layers(model)] == TINY_LAYERS
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))  # leaf layers, not blocks: one layer
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), mlp)
    assert [layer.name for layer in rule_layers(model)] == ["0", "2"]

    class Embedded(nn.Module):  # bare parameters of the root and of a split module join the layer before
        def __init__(self):
            super().__init__()
            self.token = nn.Parameter(torch.zeros(4))
            self.stem = nn.Linear(4, 4)
            self.body = nn.Module()
            self.body.shift = nn.Parameter(torch.zeros(4))
            self.body.blocks = nn.ModuleList(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)) for _ in range(2))

    layers = rule_layers(Embedded())
    assert [layer.paths for layer in layers] == [["token", "stem", "body.shift"], ["body.blocks.0"],
                                                 ["body.blocks.1"]]
    assert model_layers(Embedded())[0].numel() == 4 + 20 + 4


def test_layers_override_lists_or_groups_modules_and_parameters():
    model = build_model(tiny(layers=["features", "classifier"]))
    assert [layer.name for layer in model_layers(model)] == ["features", "classifier"]
    model = build_model(tiny(layers={"convs": ["features.0", "features.1"], "rest": ["features.2", "classifier"]}))
    layers = model_layers(model)
    assert [layer.name for layer in layers] == ["convs", "rest"]
    assert layers[0].modules == [model.features[0], model.features[1]]
    # a parameter by its dotted name (as the ViT's class token)
    model = build_model(tiny(layers={"w": ["classifier.weight"], "b": ["classifier.bias"], "f": ["features"]}))
    assert [p for layer in model_layers(model) for p in layer.parameters()][:2] == [model.classifier.weight,
                                                                                     model.classifier.bias]
    model = build_model(tiny(flip_modules=["features.2"], dropout_after=["features.0"]))
    assert (model.memloc_flip_modules, model.memloc_dropout_after, model.memloc_layers) == (
        ["features.2"], ["features.0"], None)


@pytest.mark.parametrize("fields,message", [
    ({"layers": ["features.0", "features.1", "classifier"]}, r"layers: parameters in no layer: features\.2\.0"),
    ({"layers": ["features", "features.0", "classifier"]}, "a parameter is in both layer 'features' and layer "
                                                           "'features.0'"),
    ({"layers": ["features", "pool", "classifier"]}, "layers without parameters: pool"),
    ({"layers": ["features", "classifer"]}, r"tinycnn\.layers: TinyCNN has no module 'classifer'; its modules: "
                                            r"features, features\.0, features\.0\.0"),
    ({"flip_modules": ["features.9"]}, r"model_definitions\.tinycnn\.flip_modules: TinyCNN has no module "
                                       r"'features\.9'"),
    ({"dropout_after": ["head"]}, r"model_definitions\.tinycnn\.dropout_after: TinyCNN has no module 'head'"),
])
def test_bad_overrides_name_the_key(fields, message):
    with pytest.raises(ValueError, match=message):
        build_model(tiny(**fields))


def test_named_modules_or_error():
    model = build(10, 1, 28)
    assert named_modules_or_error(model, ["classifier", "features.1"], "k") == [model.classifier, model.features[1]]
    with pytest.raises(ValueError, match=r"k: TinyCNN has no module 'features\.7'; its modules: features, "):
        named_modules_or_error(model, ["features.7"], "k")


# -- factories ------------------------------------------------------------------------------


def test_factory_from_a_file_or_a_module_path(monkeypatch, tmp_path):
    by_file, by_module = build_model(tiny()), build_model(tiny("test_models:build"))
    for model in (by_file, by_module):
        assert type(model).__name__ == "TinyCNN" and [layer.name for layer in model_layers(model)] == TINY_LAYERS
    assert build_model(tiny(settings={"width": 6})).classifier.in_features == 12  # settings: keyword arguments
    # a relative file: the working directory first, then beside each config file; stored absolute
    monkeypatch.chdir(ROOT)
    assert resolve_factory("tests/test_models.py:build") == THIS_FILE
    monkeypatch.chdir(tmp_path)
    assert resolve_factory("test_models.py:build", [tmp_path / "a.yaml", ROOT / "tests" / "b.yaml"]) == THIS_FILE
    assert resolve_factory(THIS_FILE) == THIS_FILE and resolve_factory("pkg.mod:f") == "pkg.mod:f"
    with pytest.raises(ValueError, match=r"k: file 'nets/missing\.py' is neither in the working directory nor "
                                         r"next to a config file"):
        resolve_factory("nets/missing.py:build", [tmp_path / "a.yaml"], key="k")


@pytest.mark.parametrize("spec,message", [
    ("build", r"'build' is neither 'package\.module:callable' nor 'path/to/file\.py:callable'"),
    ("/no/such/net.py:build", r"file '/no/such/net\.py' does not exist"),
    ("no_such_package.nets:build", r"no module 'no_such_package\.nets' on the Python path"),
    (f"{Path(__file__).resolve()}:missing", r"test_models\.py has no 'missing'"),
    (f"{Path(__file__).resolve()}:ROOT", "is a PosixPath, not a callable"),
    (f"{Path(__file__).resolve()}:not_a_module", r"returned a str, not a torch\.nn\.Module"),
    (f"{Path(__file__).resolve()}:TinyCNN", r"TinyCNN\(num_classes=10, in_channels=1, image_size=28\) raised "
                                            "TypeError"),
])
def test_bad_factories_name_the_key(spec, message):
    with pytest.raises(ValueError, match=r"model_definitions\.tinycnn\.factory: .*" + message):
        build_model(tiny(spec))


def test_factory_file_that_fails_to_import(tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_dependency\n")
    with pytest.raises(ValueError, match=r"key: running .*broken\.py raised ModuleNotFoundError"):
        call_factory(f"{tmp_path / 'broken.py'}:build", 10, 1, 28, {}, key="key")


# -- the workflow config ----------------------------------------------------------------------


def write_preset(folder: Path) -> Path:
    """The test preset in `folder`, with TinyCNN declared by a path relative to `folder`
    (nets/tiny.py, a copy of this file)."""
    (folder / "nets").mkdir(parents=True)
    shutil.copy(__file__, folder / "nets" / "tiny.py")
    path = folder / "preset.yaml"
    path.write_text(PRESET.read_text() + '\nmodel_definitions:\n  tinycnn: {factory: "nets/tiny.py:build"}\n')
    return path


def test_declared_model_in_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not where the file is: found beside the config file
    path = write_preset(tmp_path / "configs")
    config = load_config(path)
    assert resolve_factories(copy.deepcopy(config), [path]) == config  # stored absolute: idempotent
    config["models"] = ["resnet9", "tinycnn"]
    config["model_settings"]["tinycnn"] = {"width": 3}
    check_config(config)
    factory = f"{(tmp_path / 'configs' / 'nets' / 'tiny.py').resolve()}:build"
    assert config["model_definitions"]["tinycnn"]["factory"] == factory  # absolute
    assert layer_names(config, "tinycnn") == TINY_LAYERS
    cfg = planning_config(config, "tinycnn", "fashion_mnist")
    assert (cfg.in_channels, cfg.image_size, cfg.settings, cfg.factory) == (1, 28, {"width": 3}, factory)
    assert layer_names(config, "resnet9") == [f"layer{i}" for i in range(1, 10)]


@pytest.mark.parametrize("change,message", [
    (lambda c: c.update(models=["tinycnn", "mynet"]), "models: model 'mynet' is neither built in"),
    (lambda c: c["primary"].update(model="mynet"), "primary.model: model 'mynet' is neither built in"),
    (lambda c: c["model_settings"].update(mynet={}), "model_settings: model 'mynet' is neither built in"),
    (lambda c: c["model_definitions"].update(resnet9={"factory": THIS_FILE, "layers": None, "flip_modules": None,
                                                      "dropout_after": None}),
     "model_definitions.resnet9: 'resnet9' is a built-in model"),
    (lambda c: c["model_settings"].update(tinycnn={"depth": 3}), r"model_definitions\.tinycnn\.factory: .*"
                                                                  "unexpected keyword argument 'depth'"),
    (lambda c: c["model_definitions"]["tinycnn"].update(layers=["features"]), r"model_definitions\.tinycnn\."
                                                                             "layers: parameters in no layer"),
])
def test_bad_model_config_stops_before_any_job(tmp_path, change, message):
    config = load_config(PRESET)
    config["model_definitions"] = {"tinycnn": {"factory": THIS_FILE, "layers": None, "flip_modules": None,
                                               "dropout_after": None}}
    check_config(copy.deepcopy(config))
    change(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_relative_factory_without_its_file_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_preset(tmp_path / "configs")
    moved = tmp_path / "preset.yaml"  # the same relative path, from a folder without nets/
    moved.write_text(path.read_text())
    with pytest.raises(ConfigError, match=r"model_definitions\.tinycnn\.factory: file 'nets/tiny\.py' is "
                                          r"neither in the working directory nor next to a config file"):
        load_config(moved)


# -- training, checkpoints and retraining of the custom model --------------------------------


@pytest.fixture(scope="module")
def tiny_run(fashion_root, tmp_path_factory):
    """TinyCNN trained one epoch on 200 Fashion-MNIST examples (20% label noise)."""
    src = data_source(fashion_root)
    table = make_corrupted_table("fashion_mnist", src, 0.2, subset=200, seed=0)
    data = training_set(table, src.load("fashion_mnist", train=True), "is_noisy")
    test = src.load("fashion_mnist", train=False)
    cfg = train_config(epochs=1, peak_epoch=0.5, batch_size=50, seed=0, eval_batch_size=256)
    folder = tmp_path_factory.mktemp("tinycnn")
    run_data = RunData(data, test.images[:100], test.labels[:100])
    paths = train(tiny(settings={"width": 4}), cfg, run_data, folder, CPU, progress=False)
    return paths, data, test


def test_one_epoch_of_the_custom_model_and_its_checkpoint(tiny_run):
    paths, _, _ = tiny_run
    assert sorted(list_checkpoints(paths[0].parent)) == [0, 1]
    last = load_checkpoint(paths[-1])
    assert last["layer_names"] == TINY_LAYERS  # gradient accounting over the rule's layers
    assert last["config"]["model"]["factory"] == THIS_FILE and last["config"]["model"]["settings"] == {"width": 4}
    assert last["gradients"]["norm_a"].shape == (len(TINY_LAYERS),)
    model = model_from_checkpoint(paths[-1], CPU)  # rebuilt from the factory stored in the checkpoint
    assert type(model).__name__ == "TinyCNN"
    state = model.state_dict()
    assert state.keys() == last["model"].keys() and all(torch.equal(state[k], v) for k, v in last["model"].items())
    assert not torch.equal(last["model"]["classifier.weight"], load_checkpoint(paths[0])["model"]["classifier.weight"])


def test_retraining_a_layer_of_the_custom_model(tiny_run):
    paths, data, test = tiny_run
    model, init = model_from_checkpoint(paths[-1], CPU), load_checkpoint(paths[0])["model"]
    final = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = train_config(epochs=2, peak_epoch=1, batch_size=50, seed=0, eval_batch_size=256, gradient_accounting=False)
    layer = model_layers(model)[1]
    own = set(layer_state_keys(model, layer))
    assert own == {k for k in final if k.startswith("features.1.")}  # conv weight, BN affine and running stats
    table = retrain_layer(model, 1, init, RunData(data, test.images[:100], test.labels[:100]), cfg, CPU,
                          recalibrate_bn=True)
    assert sorted(table["epoch"].unique()) == [0, 1, 2] and table["accuracy"].between(0, 1).all()
    after = model.state_dict()
    for key, value in final.items():
        if key in own and not key.endswith("num_batches_tracked"):
            assert not torch.equal(after[key], value), key  # the reset layer trained / was re-estimated
        elif "running" in key:
            assert not torch.equal(after[key], value), key  # every BN re-estimated on the clean examples
        elif not key.endswith("num_batches_tracked"):
            assert torch.equal(after[key], value), key  # frozen
