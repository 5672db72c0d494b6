# hsmhost config: managedhsm:MyHSM: and pkcs11: references served by the
# PKCS#11 plugin from a SoftHSM2 token (make demo-pkcs11 fills in the
# @...@ placeholders). Any other token works the same way: name its
# vendor's PKCS#11 module and its label.
backend "token" {
  plugin = "@PLUGIN_DIR@/hsmbridge-pkcs11"
  # SoftHSM2 finds its token directory through SOFTHSM2_CONF; the PIN
  # comes from a file, never from this config.
  pass_env = ["SOFTHSM2_CONF"]
  settings = {
    module      = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "demo"
    pin_file    = "@PIN_FILE@"
    # The namespace the seed's managedhsm:MyHSM: references map to.
    namespace = "MyHSM"
  }
}

route {
  prefix  = "managedhsm:MyHSM:"
  backend = "token"
}

route {
  prefix  = "pkcs11:"
  backend = "token"
}
