"""FeaturizerSpec: the versioned description of how a molecule becomes integer feature rows.

A spec is data (names and vocabularies), not code: it serializes to a dict of primitives that travels in
every checkpoint, and two specs compare field by field so a mismatch can be spelled out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

SPEC_FORMAT = 1

ELEMENTS = tuple(range(1, 119))  # atomic numbers H..Og
DEFAULT_CONSTRUCTION = "atoms"  # heavy atoms as nodes, each bond as two directed edges
CONSTRUCTIONS = {  # graph construction (molgnn.featurize.constructions) -> version of the code building it
    "atoms": 1,
    "explicit_h": 1,
    "kekule": 1,
    "minimal": 1,
    "line_graph": 1,
    "motifs": 1,
}


@dataclass(frozen=True)
class FeatureVocab:
    """One categorical feature: a named RDKit property and its vocabulary.

    ``unknown=None`` appends an unknown bucket (index ``len(values)``); an int maps unseen values to that
    index instead (used by foreign specs whose embedding tables have no spare row).

    ``encoding="float16"`` marks a continuous column instead (foreign featurizers that store float16
    features, e.g. MiniMol's): the long column holds the value's IEEE half-precision bit pattern, an int in
    [0, 65536) (lossless; ``size`` 65536 keeps it out of uint8 transport). Decode with
    ``molgnn.featurize.minimol.decode_float16``. ``encoding="float32"``: the same with IEEE single-precision
    bit patterns, ints in [0, 2**32) (Chemprop's atom mass; decode with
    ``molgnn.featurize.chemprop.decode_float32``).
    """

    name: str
    values: tuple
    unknown: int | None = None
    encoding: str | None = None

    @property
    def size(self) -> int:
        """Number of embedding rows this feature needs (65536 bit patterns for a float16 column)."""
        if self.encoding == "float16":
            return 1 << 16
        if self.encoding == "float32":
            return 1 << 32
        return len(self.values) + (1 if self.unknown is None else 0)

    @property
    def unknown_index(self) -> int:
        return len(self.values) if self.unknown is None else self.unknown

    def to_dict(self) -> dict:
        out = {"name": self.name, "values": list(self.values), "unknown": self.unknown}
        return {**out, "encoding": self.encoding} if self.encoding else out  # old fingerprints unchanged

    @classmethod
    def from_dict(cls, d: dict) -> FeatureVocab:
        return cls(d["name"], tuple(d["values"]), d.get("unknown"), d.get("encoding"))


@dataclass(frozen=True)
class FeaturizerSpec:
    """How SMILES become graphs: atom and bond feature vocabularies plus a name and version.

    ``atom_features``/``bond_features`` give the columns of ``Data.x`` (long [N, Fa]) and
    ``Data.edge_attr`` (long [E, Fb]) in order. ``engine`` names the code that computes them: "molgnn"
    (``MolFeaturizer``: one RDKit getter per column) or "graphium" (``molgnn.featurize.minimol``: MiniMol's
    inputs, positional encodings included).

    ``construction`` names how the molecule becomes a graph (``molgnn.featurize.constructions``, docs/graphs.md):
    "atoms" (today's graphs: heavy atoms as nodes, bonds as edge pairs), "explicit_h", "kekule", "minimal",
    "line_graph" or "motifs"; ``construction_version`` versions that code. Both are left out of ``to_dict``
    for "atoms", so older fingerprints are unchanged.
    """

    name: str
    version: int
    atom_features: tuple[FeatureVocab, ...]
    bond_features: tuple[FeatureVocab, ...]
    format: int = field(default=SPEC_FORMAT)
    engine: str = "molgnn"
    construction: str = DEFAULT_CONSTRUCTION
    construction_version: int = 1

    def __post_init__(self):
        """A construction this molgnn does not build (or builds at another version) is refused when the spec
        is made or read (a checkpoint header), not molecule by molecule."""
        known = CONSTRUCTIONS.get(self.construction)
        if known is None:
            raise ValueError(
                f"graph construction {self.construction!r} unknown; known: {', '.join(CONSTRUCTIONS)}"
            )
        if self.construction_version != known:
            raise ValueError(
                f"graph construction {self.construction!r} v{self.construction_version}: molgnn builds v{known}"
            )

    @property
    def atom_vocab_sizes(self) -> list[int]:
        return [f.size for f in self.atom_features]

    @property
    def bond_vocab_sizes(self) -> list[int]:
        return [f.size for f in self.bond_features]

    def to_dict(self) -> dict:
        out = {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "atom_features": [f.to_dict() for f in self.atom_features],
            "bond_features": [f.to_dict() for f in self.bond_features],
        }
        if self.engine != "molgnn":
            out["engine"] = self.engine  # old fingerprints unchanged
        if self.construction != DEFAULT_CONSTRUCTION:
            out["construction"] = self.construction
            out["construction_version"] = self.construction_version
        return out

    @classmethod
    def from_dict(cls, d: dict) -> FeaturizerSpec:
        return cls(
            name=d["name"],
            version=int(d["version"]),
            atom_features=tuple(FeatureVocab.from_dict(f) for f in d["atom_features"]),
            bond_features=tuple(FeatureVocab.from_dict(f) for f in d["bond_features"]),
            format=int(d.get("format", SPEC_FORMAT)),
            engine=d.get("engine", "molgnn"),
            construction=d.get("construction", DEFAULT_CONSTRUCTION),
            construction_version=int(d.get("construction_version", 1)),
        )

    def fingerprint(self) -> str:
        """Short stable hash of the spec; part of cache keys and checked on import."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def diff(self, other: FeaturizerSpec) -> list[str]:
        """Human-readable differences between two specs (empty when identical)."""
        mine, theirs = self._explicit_dict(), other._explicit_dict()
        first = ("construction", "construction_version", "engine", "name", "version")  # explain the rest
        head = [line for k in first for line in spec_dict_diff({k: mine.get(k)}, {k: theirs.get(k)})]
        rest = spec_dict_diff(
            {k: v for k, v in mine.items() if k not in first},
            {k: v for k, v in theirs.items() if k not in first},
        )
        return head + rest

    def _explicit_dict(self) -> dict:
        """``to_dict`` with the defaulted fields written out, so a diff says ``construction: 'atoms' !=
        'line_graph'`` rather than comparing with a missing key."""
        return {
            "engine": self.engine,
            "construction": self.construction,
            "construction_version": self.construction_version,
            **self.to_dict(),
        }

    def require_equal(self, other: FeaturizerSpec, where: str, error: type[Exception] = ValueError) -> None:
        """Raise ``error("<where>: <field>: <mine> != <other's>; ...")`` (up to 10 differing fields) unless
        ``other`` is this spec. ``self`` is the reference (the expected spec), ``other`` the one given;
        ``where`` opens the message: the file or component and what it is compared with."""
        if other != self:
            raise error(f"{where}: {'; '.join(self.diff(other)[:10])}")


def spec_dict_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """List ``path: a != b`` lines for every differing leaf of two nested spec dicts."""
    out: list[str] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            out += spec_dict_diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(a, list) and isinstance(b, list) and all(isinstance(x, dict) for x in a + b):
        for i in range(max(len(a), len(b))):
            left = a[i] if i < len(a) else None
            right = b[i] if i < len(b) else None
            label = (left or right or {}).get("name", i)
            out += spec_dict_diff(left, right, f"{prefix}[{label}]")
    elif a != b:
        out.append(f"{prefix}: {_short(a)} != {_short(b)}")
    return out


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_spec() -> FeaturizerSpec:
    """molgnn's own featurizer (v1): the atom/bond features Chemprop and Hu et al. use, each with an
    unknown bucket."""
    return FeaturizerSpec(
        name="molgnn",
        version=1,
        atom_features=(
            FeatureVocab("atomic_num", ELEMENTS[:100]),
            FeatureVocab("degree", (0, 1, 2, 3, 4, 5, 6)),
            FeatureVocab("formal_charge", (-2, -1, 0, 1, 2)),
            FeatureVocab("chirality", ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW")),
            FeatureVocab("num_hs", (0, 1, 2, 3, 4)),
            FeatureVocab("hybridization", ("S", "SP", "SP2", "SP3", "SP3D", "SP3D2")),
            FeatureVocab("aromatic", (False, True)),
            FeatureVocab("in_ring", (False, True)),
        ),
        bond_features=(
            FeatureVocab("bond_type", ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")),
            FeatureVocab("conjugated", (False, True)),
            FeatureVocab("bond_in_ring", (False, True)),
            FeatureVocab(
                "stereo", ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")
            ),
        ),
    )
