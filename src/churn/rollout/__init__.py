"""Safe rollout of a new champion: progressive traffic steps judged from Prometheus, shadow comparison.

``decisions`` holds what every part shares: the traffic a rollout controls (``TrafficSplit``),
what one analysis found (``CheckResult``, ``StepAnalysis``), what a rollout did
(``StepRecord``, ``RolloutResult``) and where that is recorded (``RolloutRecorder``).
"""
