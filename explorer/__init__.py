"""The keras-resnets explorer, a Streamlit app: ``streamlit run explorer/app.py``."""
