"""Typed pipeline configuration: YAML files validated by pydantic, with clear errors.

>>> cfg = load_pipeline("examples/quickstart/pipeline.yaml")  # doctest: +SKIP
>>> cfg.entities["customers"].sinks()                           # doctest: +SKIP
"""

from config.endpoints import (
    BearerAuth,
    EndpointConfig,
    MysqlConfig,
    NoAuth,
    OAuth2ClientCredentials,
    PostgresConfig,
    RestAuth,
    RestConfig,
    SqliteConfig,
)
from config.entity import EndpointBinding, EntityConfig, QualityConfig
from config.errors import ConfigError, Problem
from config.loader import load_pipeline
from config.models import (
    BatchConfig,
    BrokerConfig,
    DaemonConfig,
    PipelineConfig,
    ScheduleEntry,
    StateConfig,
)
from config.policy import ColumnPolicy, ConflictConfig
from config.render import render_config

__all__ = [
    "BatchConfig",
    "BearerAuth",
    "BrokerConfig",
    "ColumnPolicy",
    "ConfigError",
    "ConflictConfig",
    "DaemonConfig",
    "EndpointBinding",
    "EndpointConfig",
    "EntityConfig",
    "MysqlConfig",
    "NoAuth",
    "OAuth2ClientCredentials",
    "PipelineConfig",
    "PostgresConfig",
    "Problem",
    "QualityConfig",
    "RestAuth",
    "RestConfig",
    "ScheduleEntry",
    "SqliteConfig",
    "StateConfig",
    "load_pipeline",
    "render_config",
]
