"""What every provider shares to stay byte-compatible with upstream's Go providers.

- :mod:`.goyaml`: embedded YAML (``objects``, ``secrets``, ``array:``) decoded as the provider's
  Go YAML library decodes it (one :class:`~.goyaml.Decoder` per library family).
- :mod:`.encoding`: ``utf-8``/``base64``/``hex`` value decoding as Go's decoders do it.
- :mod:`.gojson`: ``json.Marshal`` output byte for byte, and ``UseNumber`` decoding.
- :mod:`.gostrconv`: the ``strconv`` parsing and float formatting those rely on.

Nothing here does I/O or imports an I/O library.
"""
