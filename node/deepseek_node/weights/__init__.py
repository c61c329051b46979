"""The weights tool (``deepseek-weights``): manifests, AES-256-GCM at rest, fetch and
atomic release switching. Standard library plus ``cryptography`` (the ``weights`` extra)."""
