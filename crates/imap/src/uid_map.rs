//! The UIDs a session has told its client about, in ascending order (sequence number n is
//! the n-th), kept as runs of consecutive UIDs: a mailbox whose messages were never
//! expunged is one run however many messages it holds, so an idle session costs the same
//! on a big mailbox as on an empty one.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: u32,
    count: u32,
}

impl Run {
    fn end(self) -> u32 {
        self.first + self.count
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UidMap {
    runs: Vec<Run>,
    len: u32,
}

impl UidMap {
    /// From UIDs in ascending order.
    pub fn from_ascending(uids: impl IntoIterator<Item = u32>) -> Self {
        let mut map = Self::default();
        for uid in uids {
            map.push(uid);
        }
        map.runs.shrink_to_fit();
        map
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn last(&self) -> Option<u32> {
        self.runs.last().map(|run| run.end() - 1)
    }

    /// Appends a UID greater than every UID held (UIDs only grow); others are ignored.
    pub fn push(&mut self, uid: u32) {
        if self.last().is_some_and(|last| uid <= last) {
            return;
        }
        match self.runs.last_mut() {
            Some(run) if run.end() == uid => run.count += 1,
            _ => self.runs.push(Run {
                first: uid,
                count: 1,
            }),
        }
        self.len += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|run| run.first..run.end())
    }

    /// How many UIDs held are below `uid`.
    pub fn count_below(&self, uid: u32) -> u32 {
        let mut below = 0;
        for run in &self.runs {
            if uid <= run.first {
                break;
            }
            below += run.count.min(uid - run.first);
        }
        below
    }

    /// The 0-based position of `uid`, if held.
    pub fn position(&self, uid: u32) -> Option<u32> {
        let mut before = 0;
        for run in &self.runs {
            if uid < run.first {
                return None;
            }
            if uid < run.end() {
                return Some(before + uid - run.first);
            }
            before += run.count;
        }
        None
    }

    /// The UID at 0-based position `index`.
    pub fn get(&self, index: u32) -> Option<u32> {
        let mut index = index;
        for run in &self.runs {
            if index < run.count {
                return Some(run.first + index);
            }
            index -= run.count;
        }
        None
    }

    /// Removes `uid`; returns the position it had.
    pub fn remove(&mut self, uid: u32) -> Option<u32> {
        let position = self.position(uid)?;
        let i = self
            .runs
            .iter()
            .position(|run| run.first <= uid && uid < run.end())?;
        let run = self.runs[i];
        let left = Run {
            first: run.first,
            count: uid - run.first,
        };
        let right = Run {
            first: uid + 1,
            count: run.end() - uid - 1,
        };
        let pieces: Vec<Run> = [left, right].into_iter().filter(|r| r.count > 0).collect();
        self.runs.splice(i..=i, pieces);
        self.len -= 1;
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_uids_are_one_run() {
        let map = UidMap::from_ascending(1..=2000);
        assert_eq!(map.runs.len(), 1);
        assert_eq!(map.len(), 2000);
        assert_eq!(map.last(), Some(2000));
    }

    #[test]
    fn positions_and_lookups_agree_with_a_plain_list() {
        let uids = [2, 3, 4, 7, 9, 10, 11, 20];
        let mut map = UidMap::from_ascending(uids);
        for (i, &uid) in uids.iter().enumerate() {
            assert_eq!(map.position(uid), Some(i as u32));
            assert_eq!(map.get(i as u32), Some(uid));
        }
        for uid in 0..25 {
            let below = uids.iter().filter(|&&u| u < uid).count() as u32;
            assert_eq!(map.count_below(uid), below, "uid {uid}");
            assert_eq!(map.position(uid).is_some(), uids.contains(&uid));
        }
        assert_eq!(map.get(8), None);
        assert_eq!(map.iter().collect::<Vec<_>>(), uids);

        assert_eq!(map.remove(10), Some(5));
        assert_eq!(map.remove(10), None);
        assert_eq!(map.remove(2), Some(0));
        assert_eq!(map.iter().collect::<Vec<_>>(), [3, 4, 7, 9, 11, 20]);
        assert_eq!(map.len(), 6);
        map.push(21);
        map.push(5);
        assert_eq!(map.iter().collect::<Vec<_>>(), [3, 4, 7, 9, 11, 20, 21]);
        assert_eq!(map.last(), Some(21));
    }
}
