"""mercure's task.json schema as a pydantic model, written from the field list of mercure's Task
model (app/common/types.py: Task, TaskInfo, TaskDispatch, TaskProcessing, TaskStudy, Module) with
its strictness (unknown fields are refused), so that tests can check that what ferry gives a
processing module validates as mercure's own modules expect. Debian's python3-pydantic (1.10).
"""
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, Extra


class Strict(BaseModel):
    class Config:
        extra = Extra.forbid


class Module(Strict):
    docker_tag: Optional[str] = ""
    additional_volumes: Optional[str] = ""
    environment: Optional[str] = ""
    docker_arguments: Optional[str] = ""
    settings: Dict[str, Any] = {}
    contact: Optional[str] = ""
    comment: Optional[str] = ""
    constraints: Optional[str] = ""
    resources: Optional[str] = ""
    requires_root: Optional[bool] = False
    requires_persistence: Optional[bool] = False
    persistence_folder_name: Optional[str] = ""
    network_enabled: Optional[bool] = True


class TaskInfo(Strict):
    action: Literal["route", "both", "process", "discard", "notification"]
    uid: str
    uid_type: Literal["series", "study"]
    triggered_rules: Union[Dict[str, Literal[True]], str]
    applied_rule: Optional[str]
    patient_name: Optional[str]
    mrn: str
    acc: str
    sender_address: str = "MISSING"
    mercure_version: str
    mercure_appliance: str
    mercure_server: str
    device_serial_number: Optional[str] = None
    fail_stage: Optional[Literal["DISPATCHING", "PROCESSING", "ROUTING"]] = None
    sender_aet: str = "MISSING"
    receiver_aet: str = "MISSING"


class TaskDispatchStatus(Strict):
    state: Literal["waiting", "complete", "error"]
    time: str


class TaskDispatch(Strict):
    target_name: Union[str, List[str]]
    status: Dict[str, TaskDispatchStatus] = {}
    retries: Optional[int] = 0
    next_retry_at: Optional[float] = 0
    series_uid: Optional[str] = None


class TaskStudy(Strict):
    study_uid: str
    complete_trigger: Optional[Literal["timeout", "received_series"]]
    complete_required_series: str
    creation_time: str
    last_receive_time: str
    received_series: Optional[List[str]]
    received_series_uid: Optional[List[str]]
    complete_force: bool = False
    complete_force_action: Optional[Literal["discard", "proceed", "ignore"]] = "discard"


class TaskProcessing(Strict):
    module_name: str
    module_config: Optional[Module]
    settings: Dict[str, Any] = {}
    retain_input_images: bool
    output: Optional[Dict] = None


class Empty(Strict):
    pass


class Task(Strict):
    info: TaskInfo
    id: str
    dispatch: Union[TaskDispatch, Empty] = Empty()
    process: Union[TaskProcessing, List[TaskProcessing], Empty] = Empty()
    study: Union[TaskStudy, Empty] = Empty()
    nomad_info: Optional[Any] = None
