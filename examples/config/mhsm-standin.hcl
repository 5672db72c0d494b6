# hsmhost configuration: every managedhsm: (and akv:) key reference goes to
# the Managed HSM backend, pointed at the local stand-in (testdoubles/mhsm-standin)
# instead of Azure. Only this file differs from a simulator setup: the
# applications, their commands and their key references stay the same.
#
# hsmhost takes absolute paths only, so this is a template. scripts/demo-mhsm.sh
# and e2e/mhsm_test.go replace the @...@ words:
#
#   @PLUGIN_DIR@    absolute path of build/plugins
#   @STANDIN_ADDR@  host:port the stand-in listens on (its -url-out file)
#   @STANDIN_CA@    absolute path of the CA certificate it wrote (-ca-out)
#
# By hand:
#
#   build/bin/mhsm-standin -addr 127.0.0.1:8443 -token "$AZURE_CLI_ACCESS_TOKEN" -ca-out /tmp/mhsm-ca.pem &
#   sed -e "s|@PLUGIN_DIR@|$PWD/build/plugins|" -e "s|@STANDIN_ADDR@|127.0.0.1:8443|" \
#       -e "s|@STANDIN_CA@|/tmp/mhsm-ca.pem|" examples/config/mhsm-standin.hcl > /tmp/hsmhost.hcl
#   build/bin/hsmhost serve --config /tmp/hsmhost.hcl
#
# hsmhost needs AZURE_CLI_ACCESS_TOKEN set to a token the stand-in accepts
# (its -token); the applications (openssl, nginx) never need it.

backend "mhsm" {
  plugin = "@PLUGIN_DIR@/hsmbridge-mhsm"
  # Plugins get a minimal environment; the static token must be passed on.
  pass_env = ["AZURE_CLI_ACCESS_TOKEN"]
  settings = {
    # The endpoint stays the real one (https://{hsm}.managedhsm.azure.net),
    # so azkeys' check that the 401 challenge names *.managedhsm.azure.net
    # holds; connect_to sends the connections to the stand-in instead,
    # whose certificate carries *.managedhsm.azure.net, signed by its CA.
    connect_to = "@STANDIN_ADDR@"
    ca_file    = "@STANDIN_CA@"
    # What `hsmhost key list` lists with no HSM named, and where random
    # bytes come from.
    hsms        = "MyHSM"
    max_retries = 3
    try_timeout = "10s"
  }
}

route {
  prefix  = "managedhsm:"
  backend = "mhsm"
}
