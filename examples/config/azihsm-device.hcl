# hsmhost configuration for a machine with the Azure Integrated HSM: every
# azihsm:// reference (the masked key files of the Integrated HSM seed's
# commands) goes to the device backend. docs/INTEGRATED_HSM.md explains each
# setting and how the seed provider's openssl.cnf keys map onto them.
#
# Only hsmhost (and the plugin it starts) talks to the device: applications
# need neither the credential nor access to the device node, so nothing has
# to run with sudo but hsmhost itself (or its service user, see the doc).

backend "azihsm" {
  plugin = "/usr/local/lib/hsmbridge/plugins/hsmbridge-azihsm"
  # sha256 = "<sha256sum of the plugin>"

  # The partition credential, if not given in the settings below.
  pass_env = ["AZIHSM_CREDENTIALS_ID", "AZIHSM_CREDENTIALS_PIN"]

  settings = {
    # Where the native library is; without it the loader's search path.
    # library = "/usr/lib/azihsm/libazihsm_api_native.so"

    # The partition (default: the first the library lists) and the API
    # revision (default: the partition's highest).
    # device       = "/dev/azihsm0"
    # api_revision = "1.0"

    # Credential files in the upstream provider's binary form (16 bytes
    # each), instead of AZIHSM_CREDENTIALS_ID / _PIN.
    # credentials_id_file  = "/var/lib/azihsm/credentials_id.bin"
    # credentials_pin_file = "/var/lib/azihsm/credentials_pin.bin"

    # Partition keys, as the seed provider keeps them.
    bmk_path = "/var/lib/azihsm/bmk.bin"
    muk_path = "/var/lib/azihsm/muk.bin"
    # obk_source            = "caller"   # default tpm
    # mobk_path             = "/var/lib/azihsm/mobk.bin"
    # pota_source           = "caller"   # default tpm
    # pota_private_key_path = "/var/lib/azihsm/pota.key"
    # pota_public_key_path  = "/var/lib/azihsm/pota.pub"
  }
}

route {
  prefix  = "azihsm://"
  backend = "azihsm"
}
