"""Construction augmentation (graph.augment, docs/graphs.md): compatible lists only, the engine builds each
construction from one parse (cache key included), the training loader draws a seeded construction per molecule
per epoch, a tiny augmented run predicts on its main construction, and the agreement objective learns."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FIXTURES, TINY_ESOL
from molgnn.data.augment import ConstructionSampler, augment_specs, compatible
from molgnn.data.datamodule import MoleculeDataModule
from molgnn.data.engine import Products, featurize_cached
from molgnn.data.split import RandomSplit
from molgnn.data.unlabeled import UnlabeledDataModule
from molgnn.errors import MolgnnError
from molgnn.featurize import default_spec, smiles_to_graph
from molgnn.featurize.constructions import construction_spec
from molgnn.nn import DMPNNEncoder, GINEEncoder
from molgnn.tasks.pretrain import Agreement, PretrainContext

SPEC = default_spec()
ESOL = FIXTURES / "esol_small.csv"


def test_compatible_constructions_and_refusals():
    assert compatible(SPEC) == ["atoms", "explicit_h", "kekule"]
    specs = augment_specs(SPEC, ["explicit_h", "kekule", "atoms", "kekule"])  # main and repeats left out
    assert [s.construction for s in specs] == ["explicit_h", "kekule"]
    assert specs[0] == construction_spec("explicit_h") and specs[0].atom_features == SPEC.atom_features
    assert [s.construction for s in augment_specs(construction_spec("kekule"), ["atoms"])] == ["atoms"]
    for bad in ("minimal", "line_graph", "motifs"):
        with pytest.raises(MolgnnError, match=rf"^graph\.augment: construction '{bad}' does not fit"):
            augment_specs(SPEC, ["explicit_h", bad])
    with pytest.raises(MolgnnError, match="graph.augment: graph construction 'nope' is unknown"):
        augment_specs(SPEC, ["nope"])
    with pytest.raises(MolgnnError, match="graph.augment: construction 'atoms'"):
        augment_specs(construction_spec("line_graph"), ["atoms"])


def _datamodule(tmp_path, augment, seed=0, **kw):
    return MoleculeDataModule(
        ESOL,
        "smiles",
        ["logS"],
        RandomSplit(seed=0),
        SPEC,
        batch_size=16,
        featurize_workers=0,
        cache_dir=tmp_path / "cache",
        fingerprints=False,
        augment=augment,
        augment_seed=seed,
        **kw,
    )


def test_incompatible_list_is_refused_at_setup(tmp_path):
    dm = _datamodule(tmp_path, ["kekule", "line_graph"])
    with pytest.raises(MolgnnError, match="graph.augment: construction 'line_graph'"):
        dm.setup()
    assert not (tmp_path / "cache").exists()  # refused before any featurization


def test_engine_builds_each_construction_from_one_parse_and_caches_them(tmp_path):
    smiles = ["CCO", "c1ccccc1", "not a smiles", "C"]
    aug = augment_specs(SPEC, ["explicit_h", "kekule"])
    products = Products(SPEC, augment=aug)
    assert products.fingerprint() != Products(SPEC).fingerprint()
    assert Products(SPEC).fingerprint() == Products(SPEC, augment=()).fingerprint()
    first = featurize_cached("k", smiles, products, tmp_path)
    again = featurize_cached("k", smiles, products, tmp_path)  # from the cache file
    for feats in (first, again):
        assert [f.graph_index.tolist() for f in feats.augment] == [[0, 1, -1, 2]] * 2
        hydrogens = feats.augment[0].graphs.get(0)
        assert hydrogens.num_nodes == smiles_to_graph("CCO", aug[0]).num_nodes == 9
        kekule = feats.augment[1].graphs.get(1)
        assert torch.equal(kekule.edge_attr, smiles_to_graph("c1ccccc1", aug[1]).edge_attr)


def _constructions_by_row(loader) -> dict[int, int]:
    out = {}
    for batch in loader:
        counts = torch.bincount(batch.batch, minlength=batch.num_graphs)
        for row, c, n in zip(batch.row.tolist(), batch.construction.tolist(), counts.tolist()):
            out[row] = (c, n)
    return out


def test_loader_draws_a_seeded_construction_per_molecule_per_epoch(tmp_path):
    dm = _datamodule(tmp_path, ["explicit_h", "kekule"])
    dm.setup()
    assert dm.constructions == ["atoms", "explicit_h", "kekule"]
    loader = dm.train_dataloader()
    epochs = [_constructions_by_row(loader) for _ in range(3)]  # each pass is one epoch
    rows = sorted(epochs[0])
    assert len(rows) >= len(dm.split["train"]) - 1
    assert len({tuple(e[r][0] for r in rows) for e in epochs}) == 3  # a new draw each epoch
    seen = {e[r][0] for e in epochs for r in rows}
    assert seen == {0, 1, 2}
    specs = [SPEC, *augment_specs(SPEC, ["explicit_h", "kekule"])]
    for r in rows:  # each served graph is the molecule under its drawn construction
        c, n = epochs[1][r]
        assert n == smiles_to_graph(dm.smiles[r], specs[c]).num_nodes
    same = _datamodule(tmp_path, ["explicit_h", "kekule"])
    same.setup()
    again = same.train_dataloader()
    assert [_constructions_by_row(again) for _ in range(3)] == epochs  # same seed, same draws
    other = _datamodule(tmp_path, ["explicit_h", "kekule"], seed=1)
    other.setup()
    assert _constructions_by_row(other.train_dataloader()) != epochs[0]
    assert all(not hasattr(b, "construction") for b in dm.val_dataloader())  # validation: main only
    sampler = ConstructionSampler(50, [0, 1, 2], seed=3)
    sampler.set_epoch(4)  # Lightning's call at each epoch
    pairs = list(sampler)
    assert sorted(k for k, _ in pairs) == list(range(50))  # every item once, shuffled
    assert all(c == sampler.constructions(4)[k] for k, c in pairs)
    assert not np.array_equal(sampler.constructions(4), sampler.constructions(5))


def test_tiny_augmented_run_saves_reloads_and_predicts_on_its_construction(train_tiny):
    import molgnn
    from molgnn.weights import read_weights

    run = train_tiny("augment", "graph.augment=[explicit_h,kekule]", "uncertainty=none")
    model = molgnn.load(run / "checkpoints" / "best.ckpt")
    assert model.spec == SPEC  # the main construction
    header = read_weights(run / "checkpoints" / "best.ckpt").header
    assert header["heads"][0]["graph_augment"] == ["explicit_h", "kekule"]  # recorded, not used to predict
    written = pd.read_csv(run / "test_predictions.csv")
    again = model.predict(written["smiles"].tolist(), uncertainty=False)
    np.testing.assert_allclose(
        again["logS"].to_numpy(), written["logS_pred"].to_numpy(), rtol=1e-6, atol=1e-6
    )


@pytest.fixture
def paired_corpus(tmp_path):
    dm = UnlabeledDataModule(
        FIXTURES / "pretrain_200.csv",
        SPEC,
        smiles_col="SMILES",
        batch_size=32,
        featurize_workers=0,
        cache_dir=tmp_path / "cache",
        augment=["explicit_h", "kekule"],
    )
    dm.setup()
    return dm


def test_paired_corpus_carries_a_second_construction(paired_corpus):
    batch = next(iter(paired_corpus.train_dataloader()))
    assert set(batch.construction.tolist()) <= {1, 2} and batch.view_num_nodes.numel() == batch.num_graphs
    assert batch.view_edge_index.max() < batch.view_x.size(0)
    assert paired_corpus.info()["augment"] == ["explicit_h", "kekule"]
    view = __import__("molgnn.data.augment", fromlist=["view_batch"]).view_batch(batch)
    assert view.num_graphs == batch.num_graphs and view.num_nodes > batch.num_nodes  # hydrogens


@pytest.mark.parametrize("family", [DMPNNEncoder, GINEEncoder])
def test_agreement_loss_is_finite_and_decreases(paired_corpus, family):
    torch.manual_seed(0)
    encoder = family(SPEC, hidden_dim=32, num_layers=2)
    objective = Agreement(PretrainContext(encoder.out_dim, SPEC), proj_dim=32)
    batch = next(iter(paired_corpus.train_dataloader()))
    opt = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=1e-2)
    losses = []
    for _ in range(20):
        loss, logs = objective(encoder, batch)
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in logs.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_agreement_without_augment_says_what_to_set(fixtures, tmp_path):
    encoder = DMPNNEncoder(SPEC, hidden_dim=16, num_layers=1)
    batch = next(iter(_plain_corpus(tmp_path).train_dataloader()))
    with pytest.raises(MolgnnError, match="graph.augment"):
        Agreement(PretrainContext(encoder.out_dim, SPEC))(encoder, batch)


def _plain_corpus(tmp_path):
    dm = UnlabeledDataModule(
        FIXTURES / "pretrain_200.csv", SPEC, smiles_col="SMILES", batch_size=32, featurize_workers=0
    )
    dm.setup()
    return dm


def test_agreement_config_composes(compose):
    from hydra.utils import instantiate

    from molgnn.cli.pretrain import build_objectives

    cfg = compose("pretrain", ["pretrain=agreement", "graph.augment=[explicit_h,kekule]"])
    assert list(cfg.data.augment) == ["explicit_h", "kekule"]
    encoder = instantiate(cfg.encoder)
    modules, _ = build_objectives(cfg, PretrainContext(encoder.out_dim, encoder.spec))
    assert isinstance(modules["agreement"], Agreement)
    train = compose("train", ["graph=kekule", "graph.augment=[atoms]"])
    assert list(train.data.augment) == ["atoms"] and train.data.augment_seed == train.seed
    assert instantiate(train.encoder).spec == construction_spec("kekule")


def test_augment_with_precomputed_frozen_embeddings_is_refused(compose, tmp_path):
    from molgnn.cli.train import train
    from molgnn.errors import MolgnnError

    cfg = compose(
        "train",
        [*TINY_ESOL, "graph.augment=[kekule]", "task.freeze_encoder=true", "task.precompute_embeddings=true"],
    )
    with pytest.raises(MolgnnError, match=r"graph.augment=\['kekule'\] has no effect with task.precompute"):
        train(cfg, tmp_path / "run")


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_pairs_serve_the_main_graph_and_another_construction_and_the_loss_uses_both(tmp_path):
    from molgnn.data.augment import view_batch
    from molgnn.nn.heads import MLPHead
    from molgnn.tasks.regression import RegressionTask

    dm = _datamodule(tmp_path, ["explicit_h", "kekule"], augment_pairs=True)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    specs = [SPEC, *augment_specs(SPEC, ["explicit_h", "kekule"])]
    assert set(batch.construction.tolist()) <= {1, 2}  # the view is never the main construction
    for k, (row, c) in enumerate(zip(batch.row.tolist(), batch.construction.tolist())):
        assert int((batch.batch == k).sum()) == smiles_to_graph(dm.smiles[row], SPEC).num_nodes
        assert int(batch.view_num_nodes[k]) == smiles_to_graph(dm.smiles[row], specs[c]).num_nodes
    torch.manual_seed(0)
    encoder = DMPNNEncoder(SPEC, hidden_dim=16, num_layers=2)
    task = RegressionTask(encoder, MLPHead(encoder.out_dim, 1), dm.scaler, ["logS"], None, consistency=0.5)
    main = task.head_outputs(task.features(batch))[0]
    view = task.head_outputs(task.features(view_batch(batch)))[0]
    target = dm.scaler.transform(batch.y)
    expected = (
        0.5 * (((main - target) ** 2).mean() + ((view - target) ** 2).mean())
        + 0.5 * ((main - view) ** 2).mean()
    )
    torch.testing.assert_close(task._step(batch, "train"), expected)
    torch.testing.assert_close(
        task._step(batch, "val"), ((main - target) ** 2).mean()
    )  # unpaired outside training
    with pytest.raises(MolgnnError, match=r"graph.pairs=true needs graph.augment"):
        _datamodule(tmp_path, [], augment_pairs=True).setup()


def test_tiny_paired_run_records_its_pairs(train_tiny):
    from molgnn.weights import read_weights

    overrides = ("graph.augment=[explicit_h,kekule]", "graph.pairs=true", "graph.consistency=1.0")
    run = train_tiny("pairs", *overrides, "uncertainty=none")
    header = read_weights(run / "checkpoints" / "best.ckpt").header
    assert header["heads"][0]["graph_pairs"] == {"consistency": 1.0}
