"""base: what every node needs before any GPU software.

Packages, time sync (chrony), the locked-down ``deepseek`` service account, the directory
tree (config /etc/deepseek, software /opt/deepseek, data /var/lib/deepseek) and the node
facts file written from the discovered hardware.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
