# hsmhost configuration for a real Azure Key Vault Managed HSM
# (docs/MANAGED_HSM.md walks through creating one, its role assignments and
# keys). Install as /etc/hsmbridge/hsmhost.hcl, or pass --config.
#
# Applications keep using references such as managedhsm:MyHSM:tls-rsa or
# akv:vault=MyHSM,name=tls-rsa; this file alone decides that they reach the
# HSM. Only hsmhost holds Azure credentials: nginx workers and other
# applications need none.

# Keep the socket reachable by the nginx workers' group (see CONFIG.md).
# socket_mode  = "0660"
# socket_group = "www-data"

backend "mhsm" {
  # Absolute path of the installed plugin (make install puts it here).
  plugin = "/usr/local/lib/hsmbridge/plugins/hsmbridge-mhsm"
  # Pin the binary: sha256sum /usr/local/lib/hsmbridge/plugins/hsmbridge-mhsm
  # sha256 = "<64 hex digits>"

  # Plugins get a minimal environment: name every variable the credential
  # reads. AZURE_CLI_ACCESS_TOKEN (a static token, about an hour) is tried
  # first; without it, DefaultAzureCredential: environment, workload
  # identity, managed identity, then the Azure CLI login of hsmhost's user.
  pass_env = [
    "AZURE_CLI_ACCESS_TOKEN",
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
    "AZURE_CONFIG_DIR", "HTTPS_PROXY", "NO_PROXY",
  ]

  settings = {
    # Your HSM's name(s): what `hsmhost key list` lists with no HSM named.
    hsms = "MyHSM"

    # The default endpoint is https://{hsm}.managedhsm.azure.net. Sovereign
    # clouds:
    # endpoint = "https://{hsm}.managedhsm.usgovcloudapi.net"
    # endpoint = "https://{hsm}.managedhsm.azure.cn"

    # A TLS-inspecting proxy's or private endpoint's CA, besides the system's:
    # ca_file = "/etc/ssl/certs/corp-proxy-ca.pem"

    # Retries after 408/429/5xx and network errors, and a limit per try. A
    # TLS handshake waits on these, so keep them short.
    max_retries     = 3
    retry_delay     = "200ms"
    max_retry_delay = "10s"
    try_timeout     = "10s"
  }
}

# Every Managed HSM reference goes to the backend above. A longer prefix
# (e.g. "managedhsm:OtherHSM:") can send one HSM to another backend block.
route {
  prefix  = "managedhsm:"
  backend = "mhsm"
}
