"""tuning: place the inference engine on its GPUs' NUMA node(s) and HCAs.

Plans with ``deepseek_infra.pinning.plan_pinning`` (inputs: ``roles.tuning.plan``) and writes a
systemd drop-in for the engine unit (CPUAffinity, NUMAPolicy/NUMAMask, NCCL variables),
plus a boot unit that pins the GPU-local HCAs' IRQs to housekeeping CPUs. The engine unit
itself comes from the engine role; a drop-in for a unit not installed yet is harmless.
Planning happens when the operation runs (``roles.tuning.operations``), so a driver the
same run installed already counts.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
