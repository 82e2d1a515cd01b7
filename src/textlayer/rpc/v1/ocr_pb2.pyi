from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PageRequest(_message.Message):
    __slots__ = ("request_id", "image", "frame", "dpi", "options")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    DPI_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    image: bytes
    frame: int
    dpi: float
    options: PageOptions
    def __init__(self, request_id: _Optional[str] = ..., image: _Optional[bytes] = ..., frame: _Optional[int] = ..., dpi: _Optional[float] = ..., options: _Optional[_Union[PageOptions, _Mapping]] = ...) -> None: ...

class PageOptions(_message.Message):
    __slots__ = ("languages", "model")
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedScalarFieldContainer[str]
    model: str
    def __init__(self, languages: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("text", "quad", "confidence")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    QUAD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    quad: _containers.RepeatedCompositeFieldContainer[Point]
    confidence: float
    def __init__(self, text: _Optional[str] = ..., quad: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., confidence: _Optional[float] = ...) -> None: ...

class Line(_message.Message):
    __slots__ = ("words", "quad", "confidence", "block")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    QUAD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    words: _containers.RepeatedCompositeFieldContainer[Word]
    quad: _containers.RepeatedCompositeFieldContainer[Point]
    confidence: float
    block: int
    def __init__(self, words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., quad: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., confidence: _Optional[float] = ..., block: _Optional[int] = ...) -> None: ...

class PageResult(_message.Message):
    __slots__ = ("request_id", "width", "height", "rotation", "dpi", "lines", "timings_s", "server")
    class TimingsSEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    DPI_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_S_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    width: int
    height: int
    rotation: int
    dpi: float
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    timings_s: _containers.ScalarMap[str, float]
    server: str
    def __init__(self, request_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., rotation: _Optional[int] = ..., dpi: _Optional[float] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ..., timings_s: _Optional[_Mapping[str, float]] = ..., server: _Optional[str] = ...) -> None: ...
