"""Model I/O: loading and saving adapters, the model manifest, device resolution, quiet transformers.

Every command and the run file load models with :func:`load_model` (``--model PATH``), and every
model the library writes goes through :func:`save_model`, so whatever the library saved loads
back with ``--model DIR`` and nothing else: a ``biocoreset pretrain`` run folder or its ``final/``,
a ``biocoreset finetune`` folder. Files from elsewhere load too: transformers folders, ``.pt`` /
``.pth`` / ``.safetensors`` state dicts, official RNA-FM and ESM-C checkpoints.

The layer sits above the adapters (it reaches them through the plugin registry: each adapter
factory's ``from_path``) and below the training and scoring code.

Example:
    >>> import tempfile
    >>> from biocoreset.plugins import create
    >>> folder = save_model(create("adapter", "rna-fm", size="tiny"), tempfile.mkdtemp())
    >>> load_model(folder, device="cpu").name, read_manifest(folder).format
    ('rna-fm', 'hf')
"""

from biocoreset.modelio.device import resolve_device
from biocoreset.modelio.load import guess_adapter, load_model, load_weights, model_spec
from biocoreset.modelio.manifest import (
    FINAL_DIR,
    MODEL_MANIFEST,
    ModelManifest,
    model_folder,
    read_manifest,
    write_manifest,
)
from biocoreset.modelio.quiet import quiet_transformers
from biocoreset.modelio.save import WEIGHTS_FILE, save_model
from biocoreset.modelio.sizes import model_sizes
from biocoreset.modelio.sources import MODEL_SOURCES, model_source

__all__ = [
    "FINAL_DIR",
    "MODEL_MANIFEST",
    "MODEL_SOURCES",
    "WEIGHTS_FILE",
    "ModelManifest",
    "guess_adapter",
    "load_model",
    "load_weights",
    "model_folder",
    "model_sizes",
    "model_source",
    "model_spec",
    "quiet_transformers",
    "read_manifest",
    "resolve_device",
    "save_model",
    "write_manifest",
]
