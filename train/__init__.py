"""Training stages for SafeVLM: stage 1 (safety modules), stage 2 (LoRA), the shared loop
and the feature cache. Calls the library; the library never imports train/."""
