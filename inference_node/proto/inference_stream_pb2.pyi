from inference_node.proto import grpc_predict_v2_pb2 as _grpc_predict_v2_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
