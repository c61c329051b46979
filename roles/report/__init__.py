"""report: the capacity and cost report of the fleet (changes no host).

``tasks.collect`` reads every serving host's GPUs (the hardware fact the preflight judges),
plans each replica as the serve role does and prices it with the report role's variables
(deepseek_infra/cost_report.py); deploy/report.py prints the table and writes the JSON and
HTML files once per run. ``python -m roles.report saved.json`` renders a saved report again,
with other prices (``--set report_cloud_price_per_million_tokens=2``).
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
