"""weights: model weights fetched, SHA-384 verified, (encrypted at rest,) switched atomically,
re-verified on a timer.

Installs the node tool (``deepseek-weights``: the deepseek-node wheel built from this
checkout, with its ``weights`` extra, in a venv of pinned ``cryptography``), the re-hash timer and the
decrypt-into-tmpfs unit, then places ``deepseek_model`` at ``weights_revision`` from the
configured source. Everything that can be wrong on the controller (manifest, its pinned
hash, model or revision mismatch, key source, wheelhouse) is refused while the run is
being prepared, before any host changes.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
