"""The built-in plugins, registered lazily: names, ``"module:attr"`` factories and descriptions.

Each built-in plugin carries the name of the module that implements its components (e.g.
``biocoreset.selectors.cci``), so it can be blocked with ``BIOCORESET_DISABLE_PLUGINS`` like any
plugin, but registering it imports nothing: its hooks register ``"module:attr"`` strings, and the
module is imported when the component is first built (:meth:`~biocoreset.plugins.registry.Component.load`).
Listing the installed components (``biocoreset plugins``) therefore imports no model code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from biocoreset.plugins.hookspecs import hookimpl

__all__ = ["BUILTINS", "BuiltinPlugin"]

Entry = tuple[str, str, str]
"""``(name, "module:attr", description)``."""

_TASKS = "biocoreset.bench.tasks"
_AB_TASKS = "biocoreset.bench.antibody.tasks"
_FAMILIES = "biocoreset.adapters.hf_families"

BUILTINS: Mapping[str, Mapping[str, tuple[Entry, ...]]] = {
    "biocoreset.adapters.hf": {
        "adapter": (
            (
                "hf",
                "biocoreset.adapters.hf:HFAdapter",
                "any transformers masked LM with its tokenizer",
            ),
        ),
    },
    "biocoreset.adapters.rnafm": {
        "adapter": (
            (
                "rna-fm",
                "biocoreset.adapters.rnafm:RnaFmAdapter",
                "RNA-FM (ESM-1b, 25-token RNA alphabet) as EsmForMaskedLM; checkpoint=, size= or model=",
            ),
        ),
    },
    "biocoreset.adapters.esmc": {
        "adapter": (
            (
                "esmc",
                "biocoreset.adapters.esmc:EsmcAdapter",
                "ESM-C protein LMs (esm package): name=esmc_300m|esmc_600m|tiny with weights= or hf_cache=",
            ),
        ),
    },
    _FAMILIES: {
        "family": tuple(
            (name, f"{_FAMILIES}:{attr}", description)
            for name, attr, description in (
                (
                    "rna-fm",
                    "RNA_FM",
                    "RNA-FM (ESM-1b architecture, 25-token RNA alphabet) as EsmForMaskedLM",
                ),
                ("esm-2", "ESM_2", "ESM-2 style EsmForMaskedLM (rotary positions)"),
                (
                    "esm-1b",
                    "ESM_1B",
                    "ESM-1b style EsmForMaskedLM (learned positions), e.g. Nucleotide Transformer",
                ),
                (
                    "multimolecule",
                    "MULTIMOLECULE",
                    "multimolecule RNA/DNA/protein masked LMs (RNA-FM, RiNALMo, SpliceBERT, ...)",
                ),
                ("bert", "BERT", "BERT-style encoders (BERT, RoBERTa, DNABERT, ModernBERT, ...)"),
                ("generic", "GENERIC", "any other transformers masked LM"),
            )
        ),
    },
    "biocoreset.curvature.identity": {
        "curvature": (
            (
                "identity",
                "biocoreset.curvature.identity:IdentityCurvature",
                "C = I: squared gradient norm",
            ),
        ),
    },
    "biocoreset.curvature.diagonal": {
        "curvature": (
            (
                "diagonal",
                "biocoreset.curvature.diagonal:DiagonalFisher",
                "diagonal empirical Fisher over D_sub (paper Eq. 11)",
            ),
        ),
    },
    "biocoreset.curvature.kfac": {
        "curvature": (
            (
                "kfac",
                "biocoreset.curvature.kfac:KFAC",
                "K-FAC for linear layers (diagonal Fisher elsewhere)",
            ),
            (
                "ekfac",
                "biocoreset.curvature.kfac:EKFAC",
                "eigenvalue-corrected K-FAC for linear layers (diagonal Fisher elsewhere)",
            ),
        ),
    },
    "biocoreset.scorers.self_influence": {
        "scorer": (
            (
                "self-influence",
                "biocoreset.scorers.self_influence:SelfInfluenceScorer",
                "g_zᵀ (C + λ)⁻¹ g_z (paper Eq. 11)",
            ),
        ),
    },
    "biocoreset.scorers.loss": {
        "scorer": (
            (
                "loss",
                "biocoreset.scorers.loss:LossScorer",
                "per-sample masked-LM loss (baseline)",
            ),
        ),
    },
    "biocoreset.scorers.grad_norm": {
        "scorer": (
            (
                "grad-norm",
                "biocoreset.scorers.grad_norm:GradNormScorer",
                "per-sample gradient norm (baseline)",
            ),
        ),
    },
    "biocoreset.selectors.topk": {
        "selector": (
            (
                "topk",
                "biocoreset.selectors.topk:TopKSelector",
                "Top-I: the highest self-influence scores",
            ),
        ),
    },
    "biocoreset.selectors.cci": {
        "selector": (
            (
                "cci",
                "biocoreset.selectors.cci:CCISelector",
                "coverage-centric influence: stratified over score strata (Alg. 1)",
            ),
        ),
    },
    "biocoreset.selectors.cluster": {
        "selector": (
            (
                "cluster",
                "biocoreset.selectors.cluster:ClusterSelector",
                "one member per MMseqs2 cluster (random or most influential), the field's baseline",
            ),
        ),
    },
    "biocoreset.selectors.random": {
        "selector": (
            (
                "random",
                "biocoreset.selectors.random:RandomSelector",
                "uniform random baseline",
            ),
        ),
    },
    _TASKS: {
        "task": tuple(
            (name, f"{_TASKS}:{cls}", description)
            for name, cls, description in (
                (
                    "rna-type",
                    "RNATypeTask",
                    "RNA type classification (nRC): accuracy and macro-F1.",
                ),
                (
                    "crispr-on-target",
                    "CRISPROnTargetTask",
                    "CRISPR on-target efficiency regression (DeepCRISPR): Spearman and MSE.",
                ),
                (
                    "rna-modification",
                    "RNAModificationTask",
                    "RNA modification sites: AUC (binary, e.g. m6A) or mean AUC over labels "
                    "(multi-label).",
                ),
                (
                    "rna-secondary-structure",
                    "RNASecondaryStructureTask",
                    "Secondary structure as a base-pair map (bpRNA, ArchiveII): precision, recall, "
                    "F1, MCC.",
                ),
                (
                    "rna-contact-map",
                    "RNAContactMapTask",
                    "Contact map: long-range top-L, L/2, L/5, L/10 precision.",
                ),
                (
                    "rna-distance-map",
                    "RNADistanceMapTask",
                    "Distance map regression: R², Spearman, MAE, MSE over all known pairs.",
                ),
                (
                    "rbp-binding",
                    "RBPBindingTask",
                    "RBP–RNA interaction (GraphProt): accuracy, AUPR, AUC. Task option "
                    "``threshold`` (0.5).",
                ),
                (
                    "protein-localization",
                    "ProteinLocalizationTask",
                    "Binary localization (DeepLoc membrane-bound vs soluble; or TMbed): accuracy.",
                ),
                (
                    "protein-secondary-structure",
                    "ProteinSecondaryStructureTask",
                    "Per-residue 3-state secondary structure (NetSurfP-2.0 / CB513): Q3 accuracy "
                    "over valid residues.",
                ),
                (
                    "ppi-affinity",
                    "PPIAffinityTask",
                    "Protein–protein binding affinity regression on sequence pairs: MAE and RMSE.",
                ),
            )
        ),
    },
    _AB_TASKS: {
        "task": (
            (
                "antibody-v-family",
                f"{_AB_TASKS}:AntibodyVFamilyTask",
                "V-gene family of an antibody V domain (IGHV3, IGKV1...): accuracy and macro-F1.",
            ),
            (
                "antibody-chain",
                f"{_AB_TASKS}:AntibodyChainTask",
                "Chain type (heavy, kappa, lambda) of an antibody V domain: accuracy and macro-F1.",
            ),
            (
                "antibody-species",
                f"{_AB_TASKS}:AntibodySpeciesTask",
                "Species (human, mouse) of an antibody V domain: accuracy and macro-F1.",
            ),
            (
                "antibody-j-gene",
                f"{_AB_TASKS}:AntibodyJGeneTask",
                "J name of a recombined antibody V domain (IGHJ4, IGKJ1...): accuracy and macro-F1.",
            ),
            (
                "antibody-cdr3-length",
                f"{_AB_TASKS}:AntibodyCdr3LengthTask",
                "CDR3 length (IMGT, residues) of a recombined antibody V domain: Spearman ρ and MAE.",
            ),
            (
                "antibody-mlm-buckets",
                f"{_AB_TASKS}:AntibodyMaskedLossTask",
                "Held-out masked-LM loss per V-gene-frequency bucket, beside a letter-frequency "
                "predictor.",
            ),
        ),
    },
}
"""Built-in plugin name → kind → its components, in registration order (the plugin names are the
modules implementing them; kind ``"family"`` are the ``hf`` adapter's model families)."""


class BuiltinPlugin:
    """A built-in plugin: registers its components as ``"module:attr"`` strings (nothing imported).

    Args:
        name: The plugin name (the module implementing its components).

    Example:
        >>> plugin = BuiltinPlugin("biocoreset.selectors.cci")
        >>> seen = []
        >>> plugin.biocoreset_register_selectors(lambda *a, **k: seen.append(a))
        >>> seen
        [('cci', 'biocoreset.selectors.cci:CCISelector')]
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries = BUILTINS[name]

    def __repr__(self) -> str:
        return f"<built-in plugin {self.name}>"

    def _register(self, kind: str, register: Any) -> None:
        for name, target, description in self.entries.get(kind, ()):
            register(name, target, description=description)

    @hookimpl
    def biocoreset_register_adapters(self, register: Any) -> None:
        """Register the plugin's adapters."""
        self._register("adapter", register)

    @hookimpl
    def biocoreset_register_families(self, register: Any) -> None:
        """Register the plugin's model families, in the built-in detection order."""
        for name, target, description in self.entries.get("family", ()):
            register(name, target, description=description, before=None)

    @hookimpl
    def biocoreset_register_curvatures(self, register: Any) -> None:
        """Register the plugin's curvatures."""
        self._register("curvature", register)

    @hookimpl
    def biocoreset_register_scorers(self, register: Any) -> None:
        """Register the plugin's scorers."""
        self._register("scorer", register)

    @hookimpl
    def biocoreset_register_selectors(self, register: Any) -> None:
        """Register the plugin's selectors."""
        self._register("selector", register)

    @hookimpl
    def biocoreset_register_tasks(self, register: Any) -> None:
        """Register the plugin's tasks."""
        self._register("task", register)
