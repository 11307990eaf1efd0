"""The typical OpenScale onboarding notebook for a custom ML engine, written with IBM's 2020 SDK
(``ibm-ai-openscale`` 2.2.1) as its documentation shows, pointed at a Scrutiny server.

Run in the SDK's own virtualenv with ``PIP_NO_INDEX=1`` (the SDK pip-installs pyspark and
friends when it builds training statistics): ``python notebook_v1.py <input.json> <output.json>``.
"""

import json
import sys

import pandas as pd
from ibm_ai_openscale import APIClient4ICP
from ibm_ai_openscale.engines import CustomMachineLearningAsset, CustomMachineLearningInstance
from ibm_ai_openscale.supporting_classes import Feature, Metric, PayloadRecord, Tag, Threshold
from ibm_ai_openscale.supporting_classes.enums import InputDataType, ProblemType

with open(sys.argv[1]) as f:
    cfg = json.load(f)
out = {}

# -- 1. the client ---------------------------------------------------------------------------------
if cfg["auth"] == "token":
    WOS_CREDENTIALS = {"url": cfg["url"], "iam_token": cfg["token"], "data_mart_id": cfg["data_mart_id"]}
else:  # the data mart id is left to the SDK's default
    WOS_CREDENTIALS = {"url": cfg["url"], "username": "admin", "password": cfg["api_key"]}
ai_client = APIClient4ICP(WOS_CREDENTIALS)
ai_client.data_mart.setup(internal_db=True)
details = ai_client.data_mart.get_details()
out["data_mart_id"] = details["metadata"]["guid"]

# -- 2. the binding (the custom engine) ------------------------------------------------------------
binding_uid = ai_client.data_mart.bindings.add(
    "Credit risk engine", CustomMachineLearningInstance({"url": cfg["engine_url"]})
)
out["binding_uid"] = binding_uid
out["bindings"] = [b["metadata"]["guid"] for b in ai_client.data_mart.bindings.get_details()["service_bindings"]]

# -- 3. the deployments the engine exposes ---------------------------------------------------------
assets = ai_client.data_mart.bindings.get_asset_deployment_details(binding_uid)
out["deployments"] = sorted(d["deployment_id"] for d in assets)

# -- 4. the subscription ---------------------------------------------------------------------------
subscription = ai_client.data_mart.subscriptions.add(
    CustomMachineLearningAsset(
        source_uid="credit-risk",
        binding_uid=binding_uid,
        problem_type=ProblemType.BINARY_CLASSIFICATION,
        input_data_type=InputDataType.STRUCTURED,
        label_column="Risk",
        prediction_column="prediction",
        probability_column="probability",
        feature_columns=cfg["features"],
        categorical_columns=cfg["categorical"],
    )
)
out["subscription_uid"] = subscription.uid
out["subscriptions"] = ai_client.data_mart.subscriptions.get_uids()
subscription.payload_logging.enable()
subscription.performance_monitoring.enable()

# -- 5. payload logging ----------------------------------------------------------------------------
records = [
    PayloadRecord(request=r["request"], response=r["response"], response_time=r["response_time"])
    for r in cfg["payload"]
]
subscription.payload_logging.store(records=records)
out["payload_count"] = subscription.payload_logging.get_records_count()
table = subscription.payload_logging.get_table_content(limit=5)
out["payload_table_rows"] = len(table)
out["payload_table_columns"] = list(table.columns)

# -- 6. fairness, with the training data (its class labels tell Scrutiny the label order) ---------
training = pd.DataFrame(cfg["training"]["values"], columns=cfg["training"]["fields"])
subscription.fairness_monitoring.enable(
    features=[
        Feature("Sex", majority=["male"], minority=["female"], threshold=0.95),
        Feature("Age", majority=[[26, 75]], minority=[[18, 25]], threshold=0.95),
    ],
    favourable_classes=["No Risk"],
    unfavourable_classes=["Risk"],
    min_records=100,
    training_data=training,
)
fairness_run = subscription.fairness_monitoring.run(background_mode=False)
out["fairness_status"] = fairness_run["entity"]["parameters"]["last_run_status"]

# -- 7. feedback and quality -----------------------------------------------------------------------
subscription.quality_monitoring.enable(threshold=0.7, min_records=50)
subscription.feedback_logging.store(cfg["feedback"]["values"], fields=cfg["feedback"]["fields"])

quality_run = subscription.quality_monitoring.run(background_mode=False)
out["quality_status"] = quality_run["status"]
out["quality_run_id"] = quality_run["id"]

# -- 8. metrics read back --------------------------------------------------------------------------
quality = subscription.quality_monitoring.get_table_content(format="python")
out["quality_table"] = quality
fairness = subscription.fairness_monitoring.get_table_content(format="python")
out["fairness_table"] = fairness
out["quality_metrics"] = subscription.quality_monitoring.get_metrics()

# -- 9. a custom monitor: metrics computed here, stored, read back ---------------------------------
model_monitor = ai_client.data_mart.monitors.add(
    name="Model health",
    metrics=[Metric(name="sensitivity", lower_limit_default=0.8), Metric(name="specificity", lower_limit_default=0.75)],
    tags=[Tag(name="region", description="customer geographical region")],
)
monitor_uid = model_monitor["metadata"]["guid"]
subscription.monitoring.enable(
    monitor_uid=monitor_uid, thresholds=[Threshold(metric_uid="sensitivity", lower_limit=0.9)]
)
for values in cfg["custom"]:
    subscription.monitoring.store_metrics(monitor_uid=monitor_uid, metrics={**values, "region": "us-south"})
out["custom_monitor"] = monitor_uid
out["custom_table"] = subscription.monitoring.get_table_content(monitor_uid=monitor_uid, format="python")
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=1, default=str)
