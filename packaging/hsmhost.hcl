# hsmhost's configuration for the hsmhost.service system service; hsmhost(8)
# lists every directive with its default. `systemctl reload hsmhost` (SIGHUP)
# applies a change to backends, routes and policies; socket settings take
# effect on restart.

# The service's socket. Applications reach it through the provider sections
# in /etc/hsmbridge/openssl-hsmbridge.cnf (hsmbridge(7)); those that do not
# run as root must be in the group hsmbridge (adduser www-data hsmbridge).
socket       = "/run/hsmbridge/hsmhost.sock"
socket_mode  = "0660"
socket_group = "hsmbridge"
log_level    = "info"

# The software simulator, built into hsmhost: keys are kept, unencrypted,
# in /var/lib/hsmbridge/simulator (the service's state directory, which is
# also where root's own hsmhost keeps them). For trying hsmbridge out and
# for tests, not for keys that matter.
backend "simulator" {
  plugin   = "builtin:simulator"
  settings = { state_dir = "/var/lib/hsmbridge" }
}

route {
  prefix  = ""
  backend = "simulator"
}

# Azure Key Vault Managed HSM (docs: /usr/share/doc/hsmbridge/MANAGED_HSM.md).
# The credential comes from hsmhost's environment: put the variables in
# /etc/hsmbridge/hsmhost.env (mode 0600), which the service reads.
#
# backend "mhsm" {
#   plugin   = "/usr/lib/hsmbridge/plugins/hsmbridge-mhsm"
#   # sha256sum /usr/lib/hsmbridge/plugins/hsmbridge-mhsm
#   # sha256 = "<64 hex digits>"
#   pass_env = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
#               "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE",
#               "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "HTTPS_PROXY", "NO_PROXY"]
#   settings = { hsms = "MyHSM" }
# }
#
# route {
#   prefix  = "managedhsm:"
#   backend = "mhsm"
# }

# The Azure Integrated HSM device (docs: /usr/share/doc/hsmbridge/INTEGRATED_HSM.md).
# The service's sandbox hides devices and makes /var/lib/azihsm read-only:
# `systemctl edit hsmhost` and add
#   [Service]
#   PrivateDevices=no
#   SupplementaryGroups=<the device node's group>
#   ReadWritePaths=/var/lib/azihsm
#
# backend "azihsm" {
#   plugin   = "/usr/lib/hsmbridge/plugins/hsmbridge-azihsm"
#   pass_env = ["AZIHSM_CREDENTIALS_ID", "AZIHSM_CREDENTIALS_PIN"]
#   settings = {
#     bmk_path = "/var/lib/azihsm/bmk.bin"
#     muk_path = "/var/lib/azihsm/muk.bin"
#   }
# }
#
# route {
#   prefix  = "azihsm://"
#   backend = "azihsm"
# }
