//! completed_wals on the standby: the durable store every archived file goes through,
//! BACKUPLOCK, and the control files through which walmgr speaks to the standby's
//! recovery (PAUSE, STOP, RESTARTPOINT).

pub mod control;
pub mod listing;
pub mod lock;
pub mod partial;
pub mod store;
