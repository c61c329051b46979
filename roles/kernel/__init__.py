"""kernel: boot parameters, hugepages, sysctls, THP, CPU governor, memlock, nouveau.

Everything is written persistently (GRUB drop-in, sysctl.d, limits.d, modprobe.d, a boot
unit) and, where the host allows, applied now. What only a reboot applies (command line,
nouveau still loaded) is recorded as a reboot request (``deploy/reboot.py``). In a
container the files are written, nothing is applied, and that is reported.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
