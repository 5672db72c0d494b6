# hsmhost configuration: azihsm:// references go to the Integrated HSM
# device backend, loaded with the emulated device
# (testdoubles/azihsm-emulator) instead of the real native library. Only the
# library path differs from examples/config/azihsm-device.hcl: the backend,
# the plugin boundary and the applications' commands are the same.
#
# hsmhost takes absolute paths only, so this is a template; scripts/demo-azihsm.sh
# and the e2e tests replace the @...@ words:
#
#   @PLUGIN_DIR@  absolute path of build/plugins
#   @EMU_LIB@     absolute path of build/emulator/libazihsm_api_native.so
#
# The emulated device keeps its state (its masking key, the credential it
# was initialised with) in $AZIHSM_EMU_STATE_DIR, which hsmhost passes on.

backend "azihsm" {
  plugin   = "@PLUGIN_DIR@/hsmbridge-azihsm"
  pass_env = ["AZIHSM_EMU_STATE_DIR", "AZIHSM_EMU_LEAK_REPORT"]
  settings = {
    library = "@EMU_LIB@"
    # A fixed development credential: the emulation takes whatever the
    # first initialisation of its state directory used.
    credentials_id  = "70fcf730b8764238b8358010ce8a3f76"
    credentials_pin = "db3dc77fc22e430080d41b31b6f04800"
  }
}

route {
  prefix  = "azihsm://"
  backend = "azihsm"
}
