"""filebeat: ship the gateway's JSON-lines request log to Logstash (ELK, design brief 6.2).

Filebeat is not in Debian's archive: the role adds the configured Elastic apt repository
(or mirror) when filebeat_apt_repo_url is set, installs filebeat when the apt sources offer
it, and skips with a warning when they do not or when no Logstash host is configured.
A Logstash pipeline example is in roles/filebeat/files/logstash/deepseek-requests.conf.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
