"""What the in-process providers share; nothing here imports a provider package.

Byte-compatibility with upstream's Go providers:

- :mod:`.goyaml`: embedded YAML (``objects``, ``secrets``, ``array:``) decoded as the provider's
  Go YAML library decodes it (one :class:`~.goyaml.Decoder` per library family).
- :mod:`.encoding`: ``utf-8``/``base64``/``hex`` value decoding as Go's decoders do it.
- :mod:`.gojson`: ``json.Marshal`` output byte for byte, and ``UseNumber`` decoding.
- :mod:`.gostrconv`: the ``strconv`` parsing and float formatting those rely on.

Node files and failures:

- :mod:`.trusted` (with :mod:`.beneath`): the node files a SecretProviderClass may name, read
  only inside ``--trusted-file-dirs`` (blocking: call through ``run_blocking``).
- :mod:`.failures`: which error of an all-or-nothing group of fetches to report.
- :mod:`.bodies`: an HTTP answer read whole but never beyond a limit.

None of these imports an I/O library.
"""
