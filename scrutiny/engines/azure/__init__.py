"""Azure Machine Learning: Studio (classic) web services and Service (online endpoints), with Azure AD auth."""
