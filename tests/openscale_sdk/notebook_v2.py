"""The typical OpenScale onboarding notebook for a custom ML engine, written with IBM's current
SDK (``ibm-watson-openscale`` 3.x) as its documentation shows, pointed at a Scrutiny server.

Run in the SDK's own virtualenv: ``python notebook_v2.py <input.json> <output.json>``. The
input names the server, the credentials and the records to log; the output is what the SDK
read back (ids, counts, metrics), which the test compares with Scrutiny's own API. Nothing in
here knows it talks to Scrutiny.
"""

import datetime
import json
import sys

from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator, CloudPakForDataAuthenticator
from ibm_watson_openscale import APIClient
from ibm_watson_openscale.base_classes.watson_open_scale_v2 import (
    Asset,
    AssetDeploymentRequest,
    AssetPropertiesRequest,
    CustomCredentials,
    MetricThreshold,
    MetricThresholdOverride,
    MonitorMeasurementRequest,
    MonitorMetricRequest,
    MonitorTagRequest,
    ScoringEndpointRequest,
    Target,
)
from ibm_watson_openscale.supporting_classes.enums import (
    AssetTypes,
    DataSetTypes,
    DeploymentTypes,
    InputDataType,
    MetricThresholdTypes,
    ProblemType,
    ServiceTypes,
    TargetTypes,
)
from ibm_watson_openscale.supporting_classes.payload_record import PayloadRecord

with open(sys.argv[1]) as f:
    cfg = json.load(f)
out = {}

# -- 1. the client ---------------------------------------------------------------------------------
if cfg["auth"] == "cp4d":
    authenticator = CloudPakForDataAuthenticator(
        url=cfg["url"], username="admin", password=cfg["api_key"], disable_ssl_verification=True
    )
    wos_client = APIClient(authenticator=authenticator, service_url=cfg["url"])  # instance id: the CP4D default
else:
    authenticator = BearerTokenAuthenticator(bearer_token=cfg["api_key"])
    wos_client = APIClient(authenticator=authenticator, service_url=cfg["url"], service_instance_id=cfg["data_mart_id"])
out["monitors"] = {
    "quality": wos_client.monitor_definitions.MONITORS.QUALITY.ID,
    "fairness": wos_client.monitor_definitions.MONITORS.FAIRNESS.ID,
    "auc": wos_client.monitor_definitions.MONITORS.QUALITY.METRIC.AREA_UNDER_ROC,
}

# -- 2. the data mart ------------------------------------------------------------------------------
data_marts = wos_client.data_marts.list().result.data_marts
data_mart_id = data_marts[0].metadata.id
out["data_mart_id"] = data_mart_id
out["data_mart_state"] = wos_client.data_marts.get(data_mart_id).result.entity.status.state

# -- 3. the service provider (the custom engine) ---------------------------------------------------
provider = wos_client.service_providers.add(
    name="Credit risk engine",
    description="custom ML engine",
    service_type=ServiceTypes.CUSTOM_MACHINE_LEARNING,
    credentials=CustomCredentials(url=cfg["engine_url"]),
    operational_space_id="production",
    background_mode=False,
).result
service_provider_id = provider.metadata.id
out["service_provider_id"] = service_provider_id
out["service_providers"] = [p.metadata.id for p in wos_client.service_providers.list().result.service_providers]

# -- 4. the deployments the engine exposes (needs the server on https) -----------------------------
if cfg.get("discovery"):
    assets = wos_client.service_providers.list_assets(
        data_mart_id=data_mart_id, service_provider_id=service_provider_id
    ).result
    out["deployments"] = [r["metadata"]["guid"] for r in assets["resources"]]
    dep = wos_client.service_providers.list_assets(
        data_mart_id=data_mart_id, service_provider_id=service_provider_id, deployment_id="credit-risk"
    ).result["resources"][0]
    scoring_url = dep["entity"]["scoring_endpoint"]["url"]
    out["asset"] = dep["entity"]["asset"]
else:
    scoring_url = cfg["engine_url"] + "/v1/deployments/credit-risk/online"
out["scoring_url"] = scoring_url

# -- 5. the subscription ---------------------------------------------------------------------------
subscription = wos_client.subscriptions.add(
    data_mart_id=data_mart_id,
    service_provider_id=service_provider_id,
    asset=Asset(
        asset_id="credit-risk",
        name="credit-risk",
        url=scoring_url,
        asset_type=AssetTypes.MODEL,
        input_data_type=InputDataType.STRUCTURED,
        problem_type=ProblemType.BINARY_CLASSIFICATION,
    ),
    deployment=AssetDeploymentRequest(
        deployment_id="credit-risk",
        name="credit-risk deployment",
        deployment_type=DeploymentTypes.ONLINE,
        url=scoring_url,
        scoring_endpoint=ScoringEndpointRequest(url=scoring_url),
    ),
    asset_properties=AssetPropertiesRequest(
        label_column="Risk",
        probability_fields=["probability"],
        labels=["No Risk", "Risk"],
        prediction_field="prediction",
        feature_fields=cfg["features"],
        categorical_fields=cfg["categorical"],
    ),
    background_mode=False,
).result
subscription_id = subscription.metadata.id
out["subscription_id"] = subscription_id
out["subscription_state"] = wos_client.subscriptions.get(subscription_id).result.entity.status.state

# -- 6. payload logging ----------------------------------------------------------------------------
payload_data_set_id = (
    wos_client.data_sets.list(
        type=DataSetTypes.PAYLOAD_LOGGING,
        target_target_id=subscription_id,
        target_target_type=TargetTypes.SUBSCRIPTION,
    )
    .result.data_sets[0]
    .metadata.id
)
out["payload_data_set_id"] = payload_data_set_id
records = [
    PayloadRecord(request=r["request"], response=r["response"], response_time=r["response_time"])
    for r in cfg["payload"]
]
wos_client.data_sets.store_records(data_set_id=payload_data_set_id, request_body=records, background_mode=False)
out["payload_count"] = wos_client.data_sets.get_records_count(data_set_id=payload_data_set_id)
first = wos_client.data_sets.get_list_of_records(data_set_id=payload_data_set_id, limit=5).result
out["payload_first"] = [r["entity"]["values"] for r in first["records"]]

# -- 7. feedback logging ---------------------------------------------------------------------------
feedback_data_set_id = (
    wos_client.data_sets.list(
        type=DataSetTypes.FEEDBACK, target_target_id=subscription_id, target_target_type=TargetTypes.SUBSCRIPTION
    )
    .result.data_sets[0]
    .metadata.id
)
wos_client.data_sets.store_records(
    data_set_id=feedback_data_set_id,
    request_body=[{"fields": cfg["feedback"]["fields"], "values": cfg["feedback"]["values"]}],
    background_mode=False,
)
out["feedback_count"] = wos_client.data_sets.get_records_count(data_set_id=feedback_data_set_id)

# -- 8. quality ------------------------------------------------------------------------------------
target = Target(target_type=TargetTypes.SUBSCRIPTION, target_id=subscription_id)
quality = wos_client.monitor_instances.create(
    data_mart_id=data_mart_id,
    background_mode=False,
    monitor_definition_id=wos_client.monitor_definitions.MONITORS.QUALITY.ID,
    target=target,
    parameters={"min_feedback_data_size": 50},
    thresholds=[MetricThresholdOverride(metric_id="area_under_roc", type=MetricThresholdTypes.LOWER_LIMIT, value=0.8)],
).result
quality_id = quality.metadata.id
quality_run = wos_client.monitor_instances.run(monitor_instance_id=quality_id, background_mode=False).result
out["quality_run"] = {"id": quality_run.metadata.id, "state": quality_run.entity.status.state}

# -- 9. fairness -----------------------------------------------------------------------------------
fairness = wos_client.monitor_instances.create(
    data_mart_id=data_mart_id,
    background_mode=False,
    monitor_definition_id=wos_client.monitor_definitions.MONITORS.FAIRNESS.ID,
    target=target,
    parameters={
        "features": [
            {"feature": "Sex", "majority": ["male"], "minority": ["female"]},
            {"feature": "Age", "majority": [[26, 75]], "minority": [[18, 25]]},
        ],
        "favourable_class": ["No Risk"],
        "unfavourable_class": ["Risk"],
        "min_records": 100,
    },
    thresholds=[
        {
            "metric_id": "fairness_value",
            "specific_values": [{"applies_to": [{"key": "feature", "type": "tag", "value": "Age"}], "value": 90}],
            "type": "lower_limit",
            "value": 80.0,
        }
    ],
).result
fairness_id = fairness.metadata.id
fairness_run = wos_client.monitor_instances.run(monitor_instance_id=fairness_id, background_mode=False).result
out["fairness_run"] = {"id": fairness_run.metadata.id, "state": fairness_run.entity.status.state}

# -- 10. metrics read back -------------------------------------------------------------------------
out["monitor_instances"] = sorted(
    i.entity.monitor_definition_id
    for i in wos_client.monitor_instances.list(target_target_id=subscription_id).result.monitor_instances
)
wos_client.monitor_instances.show_metrics(monitor_instance_id=quality_id)
metrics = {}
end = datetime.datetime.now(datetime.UTC)
start = end - datetime.timedelta(days=1)
for name, instance_id in (("quality", quality_id), ("fairness", fairness_id)):
    measurements = wos_client.monitor_instances.measurements.list(
        monitor_instance_id=instance_id, start=start, end=end
    ).result
    m = measurements.measurements[0]
    values = {}
    for group in m.entity.values:
        tags = ".".join(t.value for t in (group.tags or []))
        for metric in group.metrics:
            values[metric.id + ("." + tags if tags else "")] = {
                "value": metric.value,
                "lower_limit": metric.lower_limit,
            }
    metrics[name] = {"measurement_id": m.metadata.id, "run_id": m.entity.run_id, "values": values}
out["metrics"] = metrics

# -- 11. a custom monitor: metrics computed here, posted, alerted on -------------------------------
custom = wos_client.monitor_definitions.add(
    name="Model health",
    metrics=[
        MonitorMetricRequest(
            name="sensitivity", thresholds=[MetricThreshold(type=MetricThresholdTypes.LOWER_LIMIT, default=0.8)]
        ),
        MonitorMetricRequest(
            name="specificity", thresholds=[MetricThreshold(type=MetricThresholdTypes.LOWER_LIMIT, default=0.75)]
        ),
    ],
    tags=[MonitorTagRequest(name="region", description="customer geographical region")],
    background_mode=False,
).result
custom_instance = wos_client.monitor_instances.create(
    data_mart_id=data_mart_id,
    background_mode=False,
    monitor_definition_id=custom.metadata.id,
    target=target,
    parameters={},
    thresholds=[MetricThresholdOverride(metric_id="sensitivity", type=MetricThresholdTypes.LOWER_LIMIT, value=0.9)],
).result
posted = [
    MonitorMeasurementRequest(
        timestamp=datetime.datetime.now(datetime.UTC),
        metrics=[{"sensitivity": v["sensitivity"], "specificity": v["specificity"], "region": "us-south"}],
    ).to_dict()
    for v in cfg["custom"]
]
wos_client.monitor_instances.measurements.add(
    monitor_instance_id=custom_instance.metadata.id, monitor_measurement_request=posted
)
custom_measurements = wos_client.monitor_instances.measurements.list(
    monitor_instance_id=custom_instance.metadata.id, start=start, end=datetime.datetime.now(datetime.UTC)
).result.measurements
out["custom"] = {
    "definition_id": custom.metadata.id,
    "monitor": wos_client.monitor_definitions.MONITORS.MODEL_HEALTH.ID,
    "instance_id": custom_instance.metadata.id,
    "measurements": [
        {
            "id": m.metadata.id,
            "issues": m.entity.issue_count,
            "tags": [(t.id, t.value) for t in m.entity.values[0].tags],
            "values": {x.id: {"value": x.value, "lower_limit": x.lower_limit} for x in m.entity.values[0].metrics},
        }
        for m in custom_measurements
    ],
}
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=1, default=str)
