//! The Entra ID and Microsoft Graph simulator. (Stub: to be implemented.)
