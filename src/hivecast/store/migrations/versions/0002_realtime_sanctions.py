"""realtime sanctions: mutes and bans of real-time rooms survive a restart

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('realtime_sanctions',
    sa.Column('room', sa.String(length=200), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('until', sa.Float(), nullable=True),
    sa.Column('by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('room', 'user_id', 'kind')
    )


def downgrade() -> None:
    op.drop_table('realtime_sanctions')
