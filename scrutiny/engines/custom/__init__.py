"""The custom ML engine: any REST service that speaks the OpenScale custom-engine contract."""
