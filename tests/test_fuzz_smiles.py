"""SMILES -> graph never raises and never hangs: a graph with consistent shapes inside the vocabularies, or a
ParseFailure with a reason. Hypothesis example counts are kept small (the whole suite has a time budget)."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem

from molgnn.chem.parse import MAX_HEAVY_ATOMS, MAX_SMILES_LENGTH, ParseFailure, parse_smiles
from molgnn.data.graphs import featurize_smiles
from molgnn.featurize.graph import GraphArrays, smiles_to_arrays, smiles_to_graph
from molgnn.featurize.spec import default_spec

SPEC = default_spec()
FA, FB = len(SPEC.atom_features), len(SPEC.bond_features)
# No wall-clock deadline: on a busy machine (other jobs on the same cores) wall time says nothing about molgnn.
# A hang is caught below by CPU time (not inflated by other processes), with a bound ~100x the usual cost.
HANG_CPU_S = 20.0
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_graph_or_failure(out) -> None:
    """The contract of smiles_to_arrays: a well-formed graph or a ParseFailure with a one-line reason."""
    if isinstance(out, ParseFailure):
        assert (
            isinstance(out.reason, str) and out.reason and "\n" not in out.reason and len(out.reason) <= 200
        )
        return
    assert isinstance(out, GraphArrays)
    n, e = out.x.shape[0], out.edge_index.shape[1]
    assert n >= 1 and out.x.shape == (n, FA) and out.x.dtype == np.int64
    assert out.edge_index.shape == (2, e) and out.edge_index.dtype == np.int64 and e % 2 == 0
    assert out.edge_attr.shape == (e, FB) and out.edge_attr.dtype == np.int64
    assert (out.x >= 0).all() and (out.x < np.array(SPEC.atom_vocab_sizes)).all()
    if e:
        assert (out.edge_attr >= 0).all() and (out.edge_attr < np.array(SPEC.bond_vocab_sizes)).all()
        assert out.edge_index.min() >= 0 and out.edge_index.max() < n
        assert (out.edge_index[:, 0::2] == out.edge_index[::-1, 1::2]).all()  # every bond in both directions
        assert (out.edge_index[0] != out.edge_index[1]).all()


@settings(FUZZ, max_examples=60)
@given(st.text(max_size=80))
def test_any_unicode_text(text):
    check_graph_or_failure(smiles_to_arrays(text, SPEC))


SMILES_ALPHABET = "CNOSPFBIclnos()[]=#$@+-.0123456789%/\\:*H>~&!{}|;,$ "


@FUZZ
@given(st.text(alphabet=SMILES_ALPHABET, max_size=120))
def test_smiles_like_garbage(text):
    check_graph_or_failure(smiles_to_arrays(text, SPEC))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(allow_nan=True),
        st.binary(max_size=20),
        st.lists(st.text(max_size=3), max_size=3),
    )
)
def test_non_text_cells(value):
    out = smiles_to_arrays(value, SPEC)
    assert isinstance(out, ParseFailure) and out.reason


# symbol -> (atomic number, valence, formal charge, isotope)
ATOM_KINDS = {
    "C": (6, 4, 0, 0),
    "N": (7, 3, 0, 0),
    "O": (8, 2, 0, 0),
    "S": (16, 2, 0, 0),
    "F": (9, 1, 0, 0),
    "Cl": (17, 1, 0, 0),
    "Br": (35, 1, 0, 0),
    "P": (15, 3, 0, 0),
    "B": (5, 3, 0, 0),
    "Si": (14, 4, 0, 0),
    "Se": (34, 2, 0, 0),
    "N+": (7, 4, 1, 0),
    "O-": (8, 1, -1, 0),
    "13C": (6, 4, 0, 13),
    "2H": (1, 1, 0, 2),
}
ORDERS = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


@st.composite
def random_molecules(draw):
    """A random valid molecule within valences (random tree + a few ring bonds; charged atoms, isotopes,
    deuterium), returned as non-canonical SMILES with its atom count."""
    kinds = draw(st.lists(st.sampled_from(["C"] * 8 + list(ATOM_KINDS)), min_size=1, max_size=40))
    mol, free = Chem.RWMol(), []
    for i, kind in enumerate(kinds):
        z, valence, charge, isotope = ATOM_KINDS[kind]
        parents = [j for j in range(i) if free[j] > 0]
        if i and (not parents or valence == 0):
            break
        atom = Chem.Atom(z)
        atom.SetFormalCharge(charge)
        atom.SetIsotope(isotope)
        mol.AddAtom(atom)
        free.append(valence)
        if i:
            j = draw(st.sampled_from(parents))
            order = draw(st.integers(1, max(1, min(3, free[i], free[j]))))
            mol.AddBond(i, j, ORDERS[order])
            free[i] -= order
            free[j] -= order
    n = mol.GetNumAtoms()
    for _ in range(draw(st.integers(0, 3))):  # ring closures between atoms with spare valence
        spare = [k for k in range(n) if free[k] > 0]
        if len(spare) < 2:
            break
        a, b = draw(st.sampled_from(spare)), draw(st.sampled_from(spare))
        if a != b and mol.GetBondBetweenAtoms(a, b) is None:
            mol.AddBond(a, b, Chem.BondType.SINGLE)
            free[a] -= 1
            free[b] -= 1
    for k in range(n):
        mol.GetAtomWithIdx(k).SetNoImplicit(False)
    return Chem.MolToSmiles(mol, canonical=False), n


@FUZZ
@given(random_molecules())
def test_random_molecules(case):
    smiles, n = case
    out = smiles_to_arrays(smiles, SPEC)
    check_graph_or_failure(out)
    assert not isinstance(out, ParseFailure), (smiles, out)  # every generated molecule is chemically valid
    assert out.x.shape[0] == n


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [
                "CCO",
                "[Na+]",
                "[Cl-]",
                "c1ccccc1",
                "O",
                "[NH4+]",
                "[Fe+3]",
                "[2H]O[2H]",
                "CC(=O)[O-]",
                "[K+]",
                "[13CH4]",
                "[Cu]<-N",
                "*C",
            ]
        ),
        min_size=1,
        max_size=8,
    )
)
def test_salts_and_multi_fragment(fragments):
    smiles = ".".join(fragments)
    out = smiles_to_arrays(smiles, SPEC)
    check_graph_or_failure(out)
    expected = Chem.MolFromSmiles(smiles)
    if expected is not None:
        assert not isinstance(out, ParseFailure) and out.x.shape[0] == expected.GetNumAtoms()


def unknown(feature: str) -> int:
    return next(f.unknown_index for f in SPEC.atom_features + SPEC.bond_features if f.name == feature)


def column(feature: str) -> int:
    """Column of ``feature`` in x (atom feature) or edge_attr (bond feature)."""
    atom = [f.name for f in SPEC.atom_features]
    return atom.index(feature) if feature in atom else [f.name for f in SPEC.bond_features].index(feature)


# SMILES -> (atoms or None for a ParseFailure, extra check)
SPECIAL = {
    "C[N+](C)(C)C.[Cl-]": (6, None),  # quaternary ammonium salt
    "[Na+].[O-]C(=O)c1ccccc1": (10, None),
    "[13CH4]": (1, None),  # isotope: same features as CH4
    "[2H]C([2H])([2H])[2H]": (5, None),  # deuterium stays as explicit atoms
    "[H]C([H])([H])[H]": (1, None),  # explicit hydrogens are folded into the carbon
    "[NH3]->[Cu+2]": (2, lambda g: (g.edge_attr[:, column("bond_type")] == unknown("bond_type")).all()),
    "[Og]": (1, lambda g: g.x[0, column("atomic_num")] == unknown("atomic_num")),  # Z=118 > vocabulary
    "[Fm]": (1, lambda g: g.x[0, column("atomic_num")] == 99),
    "*C": (2, lambda g: g.x[0, column("atomic_num")] == unknown("atomic_num")),  # dummy atom, Z=0
    "[C+5]": (1, lambda g: g.x[0, column("formal_charge")] == unknown("formal_charge")),
    "[Fe@TB1](Cl)(Cl)(Cl)(Cl)Cl": (6, None),  # trigonal-bipyramidal chirality: unknown chirality bucket
    "[U+6].[O-2].[O-2]": (3, None),
    "C.C.C.C.C": (5, lambda g: g.edge_index.shape[1] == 0),
    "[HH]": (1, None),
    "F/C=C/F": (4, None),
    "CC |$;;$|": (2, None),  # CXSMILES extension
    "C1CC": (None, "invalid SMILES syntax"),
    "[CH5]": (None, "sanitization failed: Explicit valence"),
    "c1cccc1": (None, "sanitization failed: Can't kekulize"),
    "C>>C": (None, "invalid SMILES syntax"),
    "": (None, "empty SMILES"),
    "   ": (None, "empty SMILES"),
    "C" * (MAX_SMILES_LENGTH + 1): (None, f"SMILES longer than {MAX_SMILES_LENGTH} characters"),
    ".".join(["C"] * (MAX_HEAVY_ATOMS + 1)): (None, f"more than {MAX_HEAVY_ATOMS} heavy atoms"),
}


@pytest.mark.parametrize("smiles", list(SPECIAL), ids=[s[:24] for s in SPECIAL])
def test_special_species(smiles):
    atoms, extra = SPECIAL[smiles]
    out = smiles_to_arrays(smiles, SPEC)
    check_graph_or_failure(out)
    if atoms is None:
        assert isinstance(out, ParseFailure) and out.reason.startswith(extra)
    else:
        assert not isinstance(out, ParseFailure), out
        assert out.x.shape[0] == atoms
        assert extra is None or extra(out)


def test_long_rdkit_reason_is_clipped():
    out = smiles_to_arrays("c1cccc" + "c" * 400 + "1", SPEC)
    assert isinstance(out, ParseFailure) and len(out.reason) <= 200 and out.reason.endswith("...")


def hex_grid(w: int, h: int) -> str:
    """A saturated honeycomb (graphane-like) sheet of w*h carbons: many fused rings."""
    mol = Chem.RWMol()
    for _ in range(w * h):
        mol.AddAtom(Chem.Atom(6))
    for i in range(w):
        for j in range(h):
            if i + 1 < w:
                mol.AddBond(i * h + j, (i + 1) * h + j, Chem.BondType.SINGLE)
            if j + 1 < h and (i + j) % 2 == 0:
                mol.AddBond(i * h + j, i * h + j + 1, Chem.BondType.SINGLE)
    return Chem.MolToSmiles(mol)


LARGE = {
    "polyethylene_1500": ("C" * 1500, 1500),
    "peptide_gly200": ("NCC(=O)" + "NCC(=O)" * 200 + "O", 805),
    "honeycomb_600": (hex_grid(30, 20), 600),
    "nested_branches_1200": ("C(" * 1200 + "C" + ")" * 1200, 1201),
    "dendrimer_like": ("C(" + "C(CC(C)(C)C)" * 100 + ")" + "N" * 10, 611),
}


@pytest.mark.parametrize("name", list(LARGE))
def test_large_molecules_do_not_hang(name):
    smiles, atoms = LARGE[name]
    start = time.process_time()  # this process's CPU time: another job on the same cores does not inflate it
    out = smiles_to_arrays(smiles, SPEC)
    cpu = time.process_time() - start
    check_graph_or_failure(out)
    assert not isinstance(out, ParseFailure), out
    assert out.x.shape[0] == atoms >= 500
    assert cpu < HANG_CPU_S, f"{name}: {cpu:.1f} s of CPU for one molecule (super-linear blow-up or hang)"


def test_smiles_to_graph_and_batch_featurization_keep_rows():
    smiles = ["CCO", "C1CC", None, "[Na+].[Cl-]", float("nan"), "c1ccccc1", "", "[NH3]->[Cu+2]"]
    feats = featurize_smiles(smiles, SPEC, num_workers=0)
    assert sorted(feats.failures) == [1, 2, 4, 6]
    assert feats.graph_index.tolist() == [0, -1, -1, 1, -1, 2, -1, 3]
    for row, s in enumerate(smiles):
        single = smiles_to_graph(s, SPEC)
        if isinstance(single, ParseFailure):
            assert feats.failures[row] == single.reason
        else:
            packed = feats.graphs.get(int(feats.graph_index[row]))
            assert (packed.x == single.x).all() and (packed.edge_index == single.edge_index).all()
    assert isinstance(parse_smiles(float("nan")), ParseFailure)
